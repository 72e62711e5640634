import re
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from colorize import wrapper
from colorize.config import check, objectives
from colorize.errors import ColorizeError
from tests.conftest import run_cli


@pytest.mark.parametrize("model", ["convnet", "convae", "unet"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_group_option_builds_a_model_that_trains_one_step(compose_cfg, model: str, optimizer: str) -> None:
    cfg = compose_cfg(f"model={model}", f"optimizer={optimizer}", "model.width=1", "optimizer.lr=0.01")
    check(cfg)
    net = wrapper.colorizer(cfg.model)
    opt = instantiate(cfg.optimizer)(net.parameters())
    before = [p.detach().clone() for p in net.parameters()]
    prediction = net.predict(torch.rand(2, 1, 32, 32))
    assert prediction.shape == (2, 3, 32, 32)
    instantiate(cfg.loss)(prediction, torch.rand(2, 3, 32, 32)).backward()
    opt.step()
    assert opt.param_groups[0]["lr"] == 0.01  # the command line reached the built optimizer
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_seed_experiment_builds_the_seed_model(compose_cfg) -> None:
    cfg = compose_cfg("experiment=seed")
    check(cfg)
    model = wrapper.colorizer(cfg.model)
    assert wrapper.parameter_count(model) == 2_384_064  # the seed's Keras model.summary()
    assert type(instantiate(cfg.optimizer)(model.parameters())).__name__ == "Adam"
    # The command line beats the experiment's choice of data.
    assert compose_cfg("experiment=seed", "data=folder", "data.root=/x").data.source.value == "folder"


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
        ("optimizer.lr=inf", "optimizer.lr=inf"),
        ("optimizer.weight_decay=nan", "optimizer.weight_decay=nan"),
        ("tracking.grid_images=-1", "tracking.grid_images=-1"),
        ("objective.metric=val_accuracy", "objective.metric=val_accuracy"),
        ("objective.direction=up", "objective.direction=up"),
    ],
)
def test_out_of_range_values_name_the_key(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ColorizeError, match=f"^{key.replace('.', '[.]')} must"):
        check(compose_cfg(override))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["objective.metric=[val_psnr,val_ssim]"],
            "objective.metric has 2 metrics but objective.direction 1 directions: give one per metric",
        ),
        (
            ["objective.metric=[val_psnr,val_psnr]", "objective.direction=[maximize,maximize]"],
            "objective.metric lists a metric twice: val_psnr, val_psnr",
        ),
        (
            ["objective.metric=[val_psnr,val_accuracy]", "objective.direction=[maximize,maximize]"],
            "objective.metric=val_accuracy must be one of ",
        ),
    ],
)
def test_several_objectives_are_checked_as_pairs(compose_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ColorizeError, match=f"^{re.escape(message)}"):
        check(compose_cfg(*overrides))
    assert objectives(
        compose_cfg("objective.metric=[val_psnr,val_loss]", "objective.direction=[maximize,minimize]")
    ) == [
        ("val_psnr", "maximize"),
        ("val_loss", "minimize"),
    ]


def test_folder_needs_a_root(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(ColorizeError, match="data.root is required"):
        check(compose_cfg("data=folder", "data.root="))
    with pytest.raises(ColorizeError, match="data.root=.*nowhere is not a folder"):
        check(compose_cfg("data=folder", f"data.root={tmp_path}/nowhere"))


@pytest.mark.parametrize(
    "override, message",
    [("optimizer.lr=-1", "optimizer.lr=-1.0 must be finite and > 0"), ("data=folder", "data.root is required")],
)
def test_cli_rejects_bad_values_before_any_work(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli("train", tmp_path, override)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"colorize: error: {message}" + ("" if "lr" in message else " for data=folder (a folder of jpg/png images)")
    ]
    assert not (tmp_path / "mlruns").exists()  # no run was started, so none is left RUNNING


def test_cli_type_error_names_the_key(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "trainer.epochs=many")
    assert result.returncode != 0 and "trainer.epochs" in result.stderr


@pytest.mark.parametrize("preset", ["convae", "unet", "best_cpu"])
def test_quality_presets_compose_and_build(compose_cfg, preset: str) -> None:
    cfg = compose_cfg(f"experiment={preset}")
    check(cfg)
    assert cfg.data.source.value == "cifar10"  # like experiment=seed; data=folder data.root=... overrides it
    model = wrapper.colorizer(cfg.model)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_loss_group_builds_each_loss(compose_cfg) -> None:
    zero, two = torch.zeros(4), torch.full((4,), 2.0)
    assert instantiate(compose_cfg().loss)(zero, two) == 4  # the seed's MSE
    assert instantiate(compose_cfg("loss=l1").loss)(zero, two) == 2
    # Smooth L1 is linear past beta: |x| - beta / 2.
    assert instantiate(compose_cfg("loss=smooth_l1", "loss.beta=0.1").loss)(zero, two) == pytest.approx(1.95)
    with pytest.raises(ColorizeError, match="^loss.beta=0.0 must be finite and > 0"):
        check(compose_cfg("loss=smooth_l1", "loss.beta=0"))
    # log_mse: the mean of log10(per-image MSE + floor); an image with a 10x larger error costs 1 more.
    per_image_mse = torch.stack([torch.full((2, 3, 3), 0.01), torch.full((2, 3, 3), 0.1)])
    log_mse = instantiate(compose_cfg("loss=log_mse", "loss.floor=1e-8").loss)
    assert log_mse(per_image_mse.sqrt(), torch.zeros_like(per_image_mse)) == pytest.approx((-2 + -1) / 2, abs=1e-5)


def test_model_depth_and_target_are_checked(compose_cfg) -> None:
    with pytest.raises(ColorizeError, match="^model.depth=0 must be >= 1"):
        check(compose_cfg("model=unet", "model.depth=0"))
    with pytest.raises(
        ColorizeError, match="^model.depth=10 halves data.image_size=32 below 1 pixel at the bottleneck: at most 5"
    ):
        check(compose_cfg("model=unet", "model.depth=10"))
    check(compose_cfg("model=unet", "model.depth=5"))  # a 1-pixel bottleneck still works
    with pytest.raises(Exception, match="model.target"):
        compose_cfg("model.target=hsv")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=unet", "model.bins=8", "loss=bins"], "model.bins=8 needs model.target=ycbcr"),
        (["model=unet", "model.target=ycbcr", "model.bins=8"], "model.bins > 0 and loss=bins go together"),
        (["model=unet", "model.target=ycbcr", "loss=bins"], "model.bins > 0 and loss=bins go together"),
        (["model=unet", "model.depth=2", "model.out_level=3"], "model.out_level=3 must be at most model.depth=2"),
        (["model=unet", "model.saturation=1.5"], "model.saturation=1.5 needs model.target=lab or ycbcr"),
    ],
)
def test_chroma_settings_that_do_not_fit_together_are_one_line(compose_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ColorizeError, match=message):
        check(compose_cfg(*overrides))
