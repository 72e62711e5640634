import time
from pathlib import Path

import mlflow
import pytest

from docs.screenshots import browse, chromium, experiment_url, serve, store_uri
from tests.conftest import run_cli, runs

pytestmark = pytest.mark.skipif(chromium() is None, reason="no Chromium: apt-get install chromium (.ci/run installs it)")

TINY = ["trainer.epochs=1", "data.limit=200", "trainer.progress=false", "tracking.grid_images=2"]


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
        page = browse(experiment_url(base, experiment))
    print(f"runs {names}; training {trained - started:.1f} s, mlflow ui + Chromium {time.monotonic() - trained:.1f} s")
    for name in names:
        assert name in page
    assert "Run Name" in page and "<strong>2</strong> matching runs" in page and 'title="sample (' in page  # the run table, its Dataset column
    assert "Overview" not in page and "Detect Issues" not in page  # not the GenAI overview
