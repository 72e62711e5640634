import asyncio
import time
from pathlib import Path

import mlflow
import pytest

from docs.screenshots import RUN_TABLE, browser, chromium, experiment_url, serve, store_uri
from tests.conftest import run_cli, runs

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="no Chromium: apt-get install chromium (.ci/run installs it)"
)

TINY = ["trainer.epochs=1", "data.limit=200", "trainer.progress=false", "tracking.grid_images=2"]


async def follow_the_readme(base: str, experiment: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """What a first-time visitor sees (a new browser profile) each way the README gives: (address, page text)."""
    seen, loaded = {}, " && ".join([RUN_TABLE, *(f"document.body.innerText.includes('{name}')" for name in names)])
    async with browser() as page:
        await page.goto(experiment_url(base, experiment), loaded)
        seen["the experiment's address"] = (await page.location(), await page.text())
        await page.goto(f"{base}/#/experiments", f"document.querySelector('a[href=\"#/experiments/{experiment}\"]')")
        await page.click("[role=button]", "Model training")  # the sidebar switch; the browser remembers it
        await page.click("a", "colorize")
        await page.wait(loaded)
        seen["Model training, then the experiment list"] = (await page.location(), await page.text())
    return seen


def test_the_mlflow_ui_opens_the_experiment_on_its_named_training_runs(tmp_path: Path) -> None:
    started = time.monotonic()
    for overrides in ([], ["model=unet", "model.width=4", "model.depth=2"]):
        result = run_cli("train", tmp_path, *TINY, *overrides)
        assert result.returncode == 0, result.stderr
    names = sorted(run.info.run_name for run in runs(tmp_path))
    assert [name.rsplit("-", 1)[0] for name in names] == ["convnet-w1-rgb", "unet-w4-rgb"]
    experiment = mlflow.get_experiment_by_name("colorize").experiment_id
    trained = time.monotonic()
    with serve(store_uri(tmp_path)) as base:
        seen = asyncio.run(follow_the_readme(base, experiment, names))
    print(f"runs {names}; training {trained - started:.1f} s, mlflow ui + Chromium {time.monotonic() - trained:.1f} s")
    for way, (address, page) in seen.items():
        print(f"{way}: {address.removeprefix(base)[:80]}")
        assert f"#/experiments/{experiment}/runs?" in address and "workflowType=machine_learning" in address, way
        for name in names:
            assert name in page, way
        assert "Run Name" in page and "2 matching runs" in page and "sample (" in page, (
            way
        )  # the run table, its Dataset column
        assert "Overview" not in page and "Detect Issues" not in page, way  # not the GenAI overview
        assert "Model registry" in page, way  # the Model training sidebar (the GenAI one has no registry)
