"""The docs site builds with --strict (a broken link or a missing page fails it), and its pages render
with their navigation in headless Chromium."""

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docs.screenshots import browser, chromium
from tests.conftest import PROJECT


def test_the_docs_site_builds_strictly_and_its_pages_render_with_navigation(tmp_path: Path) -> None:
    if (
        shutil.which("mkdocs") is None
        and subprocess.run([sys.executable, "-m", "mkdocs", "--version"], capture_output=True).returncode != 0
    ):
        pytest.skip("mkdocs absent: pip install -e '.[docs]'")
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )  # Material's banner about its successor
    assert built.returncode == 0, built.stderr[-3000:]
    reference = (site / "reference" / "index.html").read_text()
    assert "data.image_size" in reference and "learning rate" in reference  # generated from the schemas at build time
    if chromium() is None:
        pytest.skip("no Chromium: .ci/run installs Debian's chromium")

    async def rendered() -> dict[str, str]:
        seen = {}
        async with browser() as page:
            for name in ("guide/serving", "reference"):
                await page.goto(
                    (site / name / "index.html").as_uri(),
                    "document.querySelector('nav.md-nav--primary') && document.querySelector('article h1')",
                )
                seen[name] = await page.eval(
                    "document.querySelector('article h1').innerText + ' | ' + document.querySelector('nav.md-nav--primary').innerText"
                )
        return seen

    seen = asyncio.run(rendered())
    assert seen["guide/serving"].startswith("Serve a model") and "Configuration reference" in seen["guide/serving"]
    assert seen["reference"].startswith("Configuration reference") and "Serve a model" in seen["reference"]
