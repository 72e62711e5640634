import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import mlflow
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from colorize import checkpoint, wrapper
from colorize.cli import register

PROJECT = Path(__file__).resolve().parents[1]
CIFAR_JPEG = PROJECT.parent / "shared" / "data" / "cifar10-jpeg"
# Small and quick: a few hundred sample patches, no progress bar.
QUICK = ["data.limit=600", "trainer.progress=false", "tracking.grid_images=4"]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator:
    """Compose the real config as a user would, with outputs under tmp_path."""
    register()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(str(PROJECT / "conf"), version_base="1.3"):
            return compose("train", [f"paths.root_dir={tmp_path}", *overrides], return_hydra_config=False)

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(module: str, root: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m colorize.<module>` as a user runs it, every output under `root`."""
    return subprocess.run(
        [sys.executable, "-m", f"colorize.{module}", f"paths.root_dir={root}", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
    )


def runs(root: Path, experiment: str = "colorize") -> list:
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


@pytest.fixture(scope="session")
def cifar_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 30,000-image CIFAR-10 JPEG train folder, unpacked once per test session."""
    archive = CIFAR_JPEG / "train.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} absent (../shared not available)")
    out = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out / "train"


@pytest.fixture
def tiny_checkpoint(compose_cfg, tmp_path: Path):
    """An untrained tiny model saved as colorize.train saves it: enough to exercise the commands."""

    def _save(*overrides: str) -> Path:
        cfg = compose_cfg("data.limit=200", *overrides)
        torch.manual_seed(0)
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        model = wrapper.colorizer(cfg.model)
        if hasattr(model.net, "head"):
            # Untrained, with eval-mode batch norm, the net predicts ab far outside the sRGB gamut:
            # a smaller output layer keeps most colours inside it, as a trained model's are.
            model.net.head.weight.data *= 1e-3
            model.net.head.bias.data *= 1e-3
        path = tmp_path / "checkpoints" / "best.pt"
        checkpoint.write({"model": model.state_dict(), "config": config}, path)
        return path

    return _save
