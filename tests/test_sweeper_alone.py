"""The sweeper is a distribution of its own: in a new virtual environment that holds it and pytest
alone (no colorize, no torch, no mlflow), it installs and hydra-optuna-sweeper's tests and examples,
ported to it (plugins/hydra_optuna_async_sweeper/tests/test_optuna_sweeper_plugin.py), pass."""

import shutil
import subprocess
import venv
from pathlib import Path

from tests.conftest import PROJECT

PLUGIN = PROJECT / "plugins" / "hydra_optuna_async_sweeper"


def test_the_sweeper_installs_and_passes_the_official_tests_where_it_is_alone(tmp_path: Path) -> None:
    copy = tmp_path / "plugin"  # built from a copy: a build leaves build/ and *.egg-info where it runs
    shutil.copytree(PLUGIN, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", f"{copy}[test]"], capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    for absent in ("colorize", "torch", "mlflow"):
        found = subprocess.run([python, "-c", f"import {absent}"], capture_output=True, text=True, cwd=tmp_path)
        assert found.returncode != 0, f"{absent} is importable beside the sweeper"
    ran = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_optuna_sweeper_plugin.py"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(ran.stdout.strip().splitlines()[-1])
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
