from pathlib import Path

import mlflow
import pytest
import torch
from torch import nn

from colorize import checkpoint, tracking
from colorize.colorizer import Colorizer
from colorize.config import Target
from colorize.errors import ColorizeError
from colorize.data import Images, Split
from colorize.loop import Settings, fit
from tests.conftest import QUICK, run_cli, runs


def artifacts(run) -> set[str]:
    client = mlflow.MlflowClient()
    out, stack = set(), [None]
    while stack:
        for item in client.list_artifacts(run.info.run_id, stack.pop()):
            (stack.append(item.path) if item.is_dir else out.add(item.path))
    return out


def test_train_end_to_end_leaves_a_complete_mlflow_run(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "trainer.epochs=2", *QUICK)
    assert result.returncode == 0, result.stderr
    [run] = runs(tmp_path)
    assert run.info.status == "FINISHED"
    client = mlflow.MlflowClient()
    for key in ("train_loss", "val_loss", "val_psnr", "val_psnr_per_image", "val_ssim", "val_colorfulness_ratio", "epoch_seconds"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    for key in ("val_gray_copy_psnr", "val_gray_copy_ssim", "val_lab_zero_ab_psnr", "val_lab_zero_ab_psnr_per_image"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0], key  # once
    train_loss = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    val_loss = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert train_loss[1] < train_loss[0] and val_loss[1] < val_loss[0]
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["trainer.epochs"] == "2"
    assert "trainer.epochs=2" in run.data.tags["hydra.overrides"]
    files = artifacts(run)
    assert {"plots/loss_curve.png", "grids/epoch_0001.png", "grids/epoch_0002.png", "config.yaml"} <= files
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= files
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert logged and logged[0].source_run_id == run.info.run_id
    model = mlflow.pytorch.load_model(logged[0].model_uri)
    assert model(torch.rand(3, 1, 32, 32)).shape == (3, 3, 32, 32)
    state = checkpoint.load(next(tmp_path.glob("outputs/*/*/checkpoints/last.pt")))
    assert state["epoch"] == 2 and state["config"]["trainer"]["epochs"] == 2
    # The run's URI is enough to evaluate it: its checkpoint artifact holds weights and config.
    store = f"tracking.uri=sqlite:///{tmp_path}/mlruns/mlflow.db"
    evaluated = run_cli("evaluate", tmp_path, f"checkpoint=runs:/{run.info.run_id}/model", store, f"output={tmp_path}/m.json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "gray_copy" in evaluated.stdout and (tmp_path / "m.json").exists()


def test_resume_gives_identical_weights_and_metrics(tmp_path: Path) -> None:
    straight, split_a, split_b = tmp_path / "straight", tmp_path / "a", tmp_path / "b"
    for root in (straight, split_a, split_b):
        root.mkdir()
    assert run_cli("train", straight, "trainer.epochs=2", *QUICK).returncode == 0
    assert run_cli("train", split_a, "trainer.epochs=1", *QUICK).returncode == 0
    first = next(split_a.glob("outputs/*/*/checkpoints/last.pt"))
    same_store = f"tracking.uri=sqlite:///{split_a}/mlruns/mlflow.db"
    resumed = run_cli("train", split_b, "trainer.epochs=2", f"trainer.resume={first}", same_store, *QUICK)
    assert resumed.returncode == 0, resumed.stderr
    a = checkpoint.load(next(straight.glob("outputs/*/*/checkpoints/last.pt")))
    b = checkpoint.load(next(split_b.glob("outputs/*/*/checkpoints/last.pt")))
    assert a["epoch"] == b["epoch"] == 2
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["history"] == b["history"]
    # The resumed epoch lands in the original run, so its curve is whole.
    [run] = runs(split_a)
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")] == [1, 2]


def test_resume_from_a_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "last.pt"
    broken.write_bytes(b"\x00" * 100)
    result = run_cli("train", tmp_path, f"trainer.resume={broken}", *QUICK)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot be read" in result.stderr


def start(root: Path):
    return tracking.start_run(f"sqlite:///{root}/mlruns/mlflow.db", "colorize", None, {"a.b": 1}, {})


def test_run_status_on_error_and_interrupt(tmp_path: Path) -> None:
    with pytest.raises(ColorizeError):
        with start(tmp_path):
            raise ColorizeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with start(tmp_path):
            raise KeyboardInterrupt
    with start(tmp_path):
        pass
    assert sorted(r.info.status for r in runs(tmp_path)) == ["FAILED", "FINISHED", "KILLED"]


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return gray.expand(-1, 3, -1, -1) * self.scale * float("nan")


def test_diverging_loss_stops_with_a_clear_error() -> None:
    images = Images(torch.zeros(8, 1, 4, 4, dtype=torch.uint8), torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.zeros(8, 3, 4, 4))
    model = Colorizer(NaNModel(), Target.rgb)
    epochs = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), Split(images, images), 3, Settings(4, progress=False), torch.Generator())
    with pytest.raises(ColorizeError, match="diverged: train loss is nan at epoch 1"):
        next(epochs)


def test_hydra_help_is_fast_and_lists_groups(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "--help")
    assert result.returncode == 0
    assert "model: convae, convnet, unet" in result.stdout and "optimizer: adam, adamw, sgd" in result.stdout
    assert "loss: l1, mse, smooth_l1" in result.stdout


def test_cosine_schedule_decays_the_lr_and_resume_follows_it(tmp_path: Path) -> None:
    straight, first, resumed = tmp_path / "straight", tmp_path / "first", tmp_path / "resumed"
    for root in (straight, first, resumed):
        root.mkdir()
    cosine = ["trainer.lr_schedule=cosine", *QUICK]
    assert run_cli("train", straight, "trainer.epochs=2", *cosine).returncode == 0
    [run] = runs(straight)
    assert [m.value for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "lr")] == pytest.approx([1e-3, 5e-4])
    assert run_cli("train", first, "trainer.epochs=1", *cosine).returncode == 0
    last = next(first.glob("outputs/*/*/checkpoints/last.pt"))
    assert run_cli("train", resumed, "trainer.epochs=2", f"trainer.resume={last}", *cosine).returncode == 0
    a = checkpoint.load(next(straight.glob("outputs/*/*/checkpoints/last.pt")))
    b = checkpoint.load(next(resumed.glob("outputs/*/*/checkpoints/last.pt")))
    assert all(torch.equal(tensor, b["model"][name]) for name, tensor in a["model"].items())
