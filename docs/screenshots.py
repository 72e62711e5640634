"""The README's MLflow UI screenshots, taken in headless Chromium from a store this script builds.

    python docs/screenshots.py            # builds /tmp/colorize-screenshots, writes docs/*.png

Two short runs and a `sweep=smoke` go to a new store; `mlflow ui` serves it on a free loopback port;
Chromium shoots the run table, the chart view and the sweep's parent (its trials
folded under it). tests/test_mlflow_ui.py uses the same helpers to check the page in CI.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

PROJECT = Path(__file__).resolve().parents[1]
RUNS = (["model=unet", "model.width=8", "model.depth=2"], ["model=convnet", "model.width=2"])
QUICK = ["data.limit=600", "trainer.progress=false", "tracking.grid_images=6", "tracking.grid_every=1"]
# MLflow 3.17's UI picks its GenAI or Model training view from this parameter (or the sidebar
# switch, remembered per browser), not from the experiment's mlflow.experimentKind tag.
TRAINING_VIEW = "workflowType=machine_learning"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)
UI_START_S = 90  # mlflow ui starts in ~10 s on 2 idle cores: it migrates the store and imports its server


def chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def train(root: Path, *overrides: str, sweep: bool = False) -> None:
    argv = [sys.executable, "-m", "colorize.train", *(["-m"] if sweep else []), f"paths.root_dir={root}", *overrides]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")


def store_uri(root: Path) -> str:
    return f"sqlite:///{root}/mlruns/mlflow.db"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(store: str) -> Iterator[str]:
    """`mlflow ui` on the store, as the README starts it, on a free loopback port: its base URL."""
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,  # its own group: its workers end with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + UI_START_S
        while True:
            if ui.poll() is not None:
                raise RuntimeError(f"mlflow ui exited: {ui.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow ui did not answer on {base} within {UI_START_S} s") from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def browse(url: str, *, screenshot: Optional[Path] = None, size: str = "1400,900", wait_ms: int = 15000) -> str:
    """Load `url` in headless Chromium (a new profile each time): the rendered DOM, or a screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        what = [f"--screenshot={screenshot}", f"--window-size={size}"] if screenshot else ["--dump-dom"]
        argv = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}", *what, url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


def experiment_url(base: str, experiment_id: str, *params: str) -> str:
    # The /runs route keeps the query (view mode, filter); /experiments/<id> redirects without it.
    return f"{base}/#/experiments/{experiment_id}/runs?{'&'.join([TRAINING_VIEW, *params])}"


def shrink(png: Path, width: int) -> None:
    """Scaled to `width` pixels and quantised to 64 colours: the README's images stay small."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "colorize-screenshots", help="the store's folder (emptied)")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs")
    parser.add_argument("--keep", action="store_true", help="shoot the store already in --root")
    args = parser.parse_args()
    if chromium() is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    if not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)
        args.root.mkdir(parents=True)
        for overrides in RUNS:
            train(args.root, "trainer.epochs=4", *QUICK, *overrides)
        train(args.root, "sweep=smoke", "trainer.epochs=1", "data.limit=200", "hydra.sweeper.register=colorize", sweep=True)

    import mlflow

    mlflow.set_tracking_uri(store_uri(args.root))
    experiment = mlflow.get_experiment_by_name("colorize").experiment_id
    with serve(store_uri(args.root)) as base:
        shots = {
            "mlflow_runs.png": experiment_url(base, experiment),
            "mlflow_charts.png": experiment_url(base, experiment, "compareRunsMode=CHART"),
            "mlflow_sweep.png": experiment_url(base, experiment, "searchFilter=" + urllib.parse.quote("tags.`optuna.study` = 'smoke'")),
        }
        for name, url in shots.items():
            browse(url, screenshot=args.out / name, wait_ms=30000)  # charts draw late
            shrink(args.out / name, 900)
            print(f"{args.out / name}: {url}")


if __name__ == "__main__":
    main()
