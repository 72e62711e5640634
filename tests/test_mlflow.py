import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import cv2

from tests.conftest import PROJECT, QUICK, run_cli, runs

# A fresh environment: the project's code is off sys.path and the editable install's finder is gone,
# so only what the logged model brings (and torch, mlflow) can load it.
LOAD = """
import sys
uri, project = sys.argv[1:]
sys.path = [p for p in sys.path if p not in ("", project) and "__editable__" not in p]
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
try:
    import colorize
except ImportError as error:
    print("before loading:", error)
else:
    raise SystemExit(f"colorize is importable here: {colorize.__file__}")
import mlflow, torch
model = mlflow.pytorch.load_model(uri)
print("loaded", type(model).__name__, "from", uri, "; colorize imported:", "colorize" in sys.modules)
print("prediction shape", tuple(model(torch.rand(2, 1, 32, 32)).shape))
"""


def test_a_run_is_named_logs_its_data_and_grids_and_its_registered_model_serves_every_command(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    mlflow.set_tracking_uri(store)
    mlflow.create_experiment("colorize", artifact_location=(tmp_path / "artifacts").as_uri())  # made before the kind tag existed
    result = run_cli("train", tmp_path, "trainer.epochs=1", *QUICK, "tracking.register=colorize")
    assert result.returncode == 0, result.stderr
    [run] = runs(tmp_path)
    assert mlflow.get_experiment_by_name("colorize").tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == f"convnet-w1-rgb-{run.info.run_id[:6]}"
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "val"} and {d.name for d in inputs.values()} == {"sample"}
    assert '"images": 480' in inputs["train"].profile and '"images": 120' in inputs["val"].profile
    assert inputs["train"].digest != inputs["val"].digest

    # models:/ URIs reach the run's checkpoint in evaluate and colorize.
    client = mlflow.MlflowClient()
    version = client.get_model_version("colorize", "1")
    assert version.run_id == run.info.run_id
    client.set_registered_model_alias("colorize", "champion", "1")
    evaluated = run_cli("evaluate", tmp_path, "checkpoint=models:/colorize/1", f"tracking.uri={store}", f"output={tmp_path}/m.json")
    assert evaluated.returncode == 0, evaluated.stderr
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), np.full((40, 50, 3), 120, np.uint8))
    colorized = run_cli("colorize", tmp_path, "checkpoint=models:/colorize@champion", f"tracking.uri={store}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
    assert colorized.returncode == 0, colorized.stderr
    assert (tmp_path / "out" / "a.png").exists()
    missing = run_cli("evaluate", tmp_path, "checkpoint=models:/colorize@nobody", f"tracking.uri={store}")
    assert missing.returncode == 1 and missing.stderr.startswith("colorize: error: checkpoint=models:/colorize@nobody: not found")

    # The logged model names no "colorize" requirement and loads where colorize cannot be imported.
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/colorize/1"))
    requirements = (model_dir / "requirements.txt").read_text()
    assert "colorize" not in requirements and "torch==" in requirements
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MLFLOW_TRACKING_URI": store}
    loaded = subprocess.run([sys.executable, "-I", "-c", LOAD, "models:/colorize@champion", str(PROJECT)], capture_output=True, text=True, timeout=300, cwd=fresh, env=env)
    print(loaded.stdout)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "before loading: No module named 'colorize'" in loaded.stdout
    assert "colorize imported: False" in loaded.stdout and "prediction shape (2, 3, 32, 32)" in loaded.stdout
