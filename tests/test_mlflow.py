import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import mlflow
import numpy as np
import requests
import skimage.data

from tests.conftest import PROJECT, QUICK, run_cli, runs

# A fresh environment: the project's code is off sys.path and the editable install's finder is gone,
# so only what the logged model brings (and torch, numpy, mlflow) can load it.
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
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(uri)
print("loaded", uri, "; colorize imported:", "colorize" in sys.modules)
print("one photo", model.predict(np.zeros((45, 71, 3), np.uint8)).shape, "a batch of gray ones", model.predict(np.zeros((2, 33, 20), np.uint8)).shape)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_is_named_logs_its_data_and_grids_and_its_registered_model_serves_every_command(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    mlflow.set_tracking_uri(store)
    mlflow.create_experiment(
        "colorize", artifact_location=(tmp_path / "artifacts").as_uri()
    )  # made before the kind tag existed
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
    evaluated = run_cli(
        "evaluate", tmp_path, "checkpoint=models:/colorize/1", f"tracking.uri={store}", f"output={tmp_path}/m.json"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), np.full((40, 50, 3), 120, np.uint8))
    colorized = run_cli(
        "colorize",
        tmp_path,
        "checkpoint=models:/colorize@champion",
        f"tracking.uri={store}",
        f"input={tmp_path}/photos",
        f"output={tmp_path}/out",
    )
    assert colorized.returncode == 0, colorized.stderr
    assert (tmp_path / "out" / "a.png").exists()
    missing = run_cli("evaluate", tmp_path, "checkpoint=models:/colorize@nobody", f"tracking.uri={store}")
    assert missing.returncode == 1 and missing.stderr.startswith(
        "colorize: error: checkpoint=models:/colorize@nobody: not found"
    )

    # The logged model names no "colorize" requirement and loads where colorize cannot be imported.
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/colorize/1"))
    requirements = (model_dir / "requirements.txt").read_text()
    assert "colorize" not in requirements and "torch==" in requirements
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MLFLOW_TRACKING_URI": store}
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", LOAD, "models:/colorize@champion", str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=fresh,
        env=env,
    )
    print(loaded.stdout)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "before loading: No module named 'colorize'" in loaded.stdout and "colorize imported: False" in loaded.stdout
    assert "one photo (45, 71, 3) a batch of gray ones (2, 33, 20, 3)" in loaded.stdout
    assert "Warning" not in loaded.stderr, loaded.stderr[-2000:]

    # `mlflow models serve` answers a plain HTTP request for a photo of a size it never trained at with
    # what the photo command writes for it.
    photo = skimage.data.astronaut()[100:145, 150:221]  # 45 x 71
    cv2.imwrite(str(tmp_path / "photos" / "wide.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    command = run_cli(
        "colorize",
        tmp_path,
        "checkpoint=models:/colorize@champion",
        f"tracking.uri={store}",
        f"input={tmp_path}/photos/wide.png",
        f"output={tmp_path}/out",
        "progress=false",
    )
    assert command.returncode == 0, command.stderr
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "wide.png")), cv2.COLOR_BGR2RGB)
    port = free_port()
    server = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/colorize@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=fresh,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        for _ in range(120):
            try:
                requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.5)
        answer = requests.post(url, json={"inputs": photo.tolist()}, timeout=60)
        assert answer.status_code == 200, answer.text[:1000]
        served = np.array(answer.json()["predictions"], dtype=np.uint8)
        difference = np.abs(served.astype(int) - written.astype(int))
        print(
            f"request: one {photo.shape} uint8 photo as JSON; response {served.shape}; largest difference from the photo command's PNG {difference.max()} levels"
        )
        assert served.shape == photo.shape and difference.max() <= 1
        wrong = requests.post(url, json={"inputs": [[0.5, 0.25]]}, timeout=60)
        assert (
            wrong.status_code == 400
            and "expected uint8 pixel values 0-255, got float64 values" in wrong.json()["message"]
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
