from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from colorize.config import check
from colorize.errors import ColorizeError
from tests.conftest import run_cli, runs


def test_default_config_composes_and_passes_checks(compose_cfg) -> None:
    cfg = compose_cfg()
    check(cfg)
    assert cfg.data.source.value == "sample"
    assert cfg.model._target_ == "colorize.models.convnet.ConvNet" and cfg.model.width == 1
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.trainer.batch_size == 100
    assert cfg.tracking.uri.startswith("sqlite:///") and cfg.tracking.uri.endswith("/mlruns/mlflow.db")


def test_seed_experiment_is_the_reference(compose_cfg) -> None:
    cfg = compose_cfg("experiment=seed")
    assert cfg.data.source.value == "cifar10"
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.data.val_fraction) == (1000, 100, 0.2)
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.model.width == 1
    # The command line beats the experiment's choice of data.
    assert compose_cfg("experiment=seed", "data=folder", "data.root=/x").data.source.value == "folder"


def test_overrides_reach_every_group(compose_cfg) -> None:
    cfg = compose_cfg("model.width=2", "optimizer=adamw", "optimizer.lr=3e-4", "trainer.epochs=20", "data=folder", "data.root=/imgs")
    assert (cfg.model.width, cfg.optimizer._target_, cfg.optimizer.lr) == (2, "torch.optim.AdamW", 3e-4)
    assert (cfg.trainer.epochs, cfg.data.root) == (20, "/imgs")
    assert OmegaConf.to_container(compose_cfg("optimizer=sgd").optimizer)["momentum"] == 0.9


@pytest.mark.parametrize(
    "override, key",
    [
        ("optimizer.lr=0", "optimizer.lr=0.0"),
        ("optimizer.lr=-1e-3", "optimizer.lr=-0.001"),
        ("model.width=0", "model.width=0"),
        ("trainer.batch_size=0", "trainer.batch_size=0"),
        ("trainer.epochs=0", "trainer.epochs=0"),
        ("data.val_fraction=1.0", "data.val_fraction=1.0"),
        ("data.val_fraction=0", "data.val_fraction=0.0"),
    ],
)
def test_out_of_range_values_name_the_key(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ColorizeError, match=f"^{key.replace('.', '[.]')} must"):
        check(compose_cfg(override))


def test_folder_needs_a_root(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(ColorizeError, match="data.root is required"):
        check(compose_cfg("data=folder", "data.root="))
    with pytest.raises(ColorizeError, match="data.root=.*nowhere is not a folder"):
        check(compose_cfg("data=folder", f"data.root={tmp_path}/nowhere"))


@pytest.mark.parametrize("override, message", [("optimizer.lr=-1", "optimizer.lr=-1.0 must be > 0"), ("data=folder", "data.root is required")])
def test_cli_rejects_bad_values_before_any_work(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli("train", tmp_path, override)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"colorize: error: {message}" + ("" if "lr" in message else " for data=folder (a folder of jpg/png images)")]
    assert not (tmp_path / "mlruns").exists()  # no run was started, so none is left RUNNING


def test_cli_type_error_names_the_key(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "trainer.epochs=many")
    assert result.returncode != 0 and "trainer.epochs" in result.stderr


@pytest.mark.parametrize("preset", ["convae", "unet", "best_cpu"])
def test_quality_presets_compose_and_build(compose_cfg, preset: str) -> None:
    from colorize import colorizer

    cfg = compose_cfg(f"experiment={preset}")
    check(cfg)
    assert cfg.data.source.value == "cifar10"  # like experiment=seed; data=folder data.root=... overrides it
    model = colorizer.build(cfg.model)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_loss_group(compose_cfg) -> None:
    assert compose_cfg().loss._target_ == "torch.nn.MSELoss"  # the seed's
    assert compose_cfg("loss=l1").loss._target_ == "torch.nn.L1Loss"
    smooth = compose_cfg("loss=smooth_l1", "loss.beta=0.1").loss
    assert smooth._target_ == "torch.nn.SmoothL1Loss" and smooth.beta == 0.1
    with pytest.raises(ColorizeError, match="^loss.beta=0.0 must be > 0"):
        check(compose_cfg("loss=smooth_l1", "loss.beta=0"))


def test_model_depth_and_target_are_checked(compose_cfg) -> None:
    with pytest.raises(ColorizeError, match="^model.depth=0 must be >= 1"):
        check(compose_cfg("model=unet", "model.depth=0"))
    with pytest.raises(Exception, match="model.target"):
        compose_cfg("model.target=hsv")
