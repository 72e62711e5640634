import os
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from torch import nn

from colorize import atomic, checkpoint, tracking
from colorize.config import Target
from colorize.errors import ColorizeError
from colorize.images import Images, Split
from colorize.loop import Settings, Training, fit
from colorize.wrapper import Colorizer
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
    for key in (
        "train_loss",
        "val_loss",
        "val_psnr",
        "val_psnr_per_image",
        "val_ssim",
        "val_colorfulness_ratio",
        "val_auc",
        "val_auc_rebalanced",
        "epoch_seconds",
    ):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    for key in (
        "val_gray_copy_psnr",
        "val_gray_copy_ssim",
        "val_gray_copy_auc_rebalanced",
        "val_lab_zero_ab_psnr",
        "val_lab_zero_ab_psnr_per_image",
    ):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0], key  # once
    train_loss = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    val_loss = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert train_loss[1] < train_loss[0] and val_loss[1] < val_loss[0]
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["trainer.epochs"] == "2"
    assert "trainer.epochs=2" in run.data.tags["hydra.overrides"]
    files = artifacts(run)
    assert {"plots/loss_curve.png", "config.yaml"} <= files
    grids = sorted(path.split("+")[2] for path in files if path.startswith("images/grids+") and path.endswith(".png"))
    assert grids == ["1", "2"]  # one grid per epoch under one image key: the run page's slider
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= files
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert logged and logged[0].source_run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(logged[0].model_uri)  # a photo in, a colour photo out, at any size
    assert model.predict(np.zeros((40, 56), np.uint8)).shape == (40, 56, 3)
    state = checkpoint.read(next(tmp_path.glob("outputs/*/*/checkpoints/last.pt")))
    assert state["epoch"] == 2 and state["config"]["trainer"]["epochs"] == 2
    # The run's URI is enough to evaluate it: its checkpoint artifact holds weights and config.
    store = f"tracking.uri=sqlite:///{tmp_path}/mlruns/mlflow.db"
    evaluated = run_cli(
        "evaluate", tmp_path, f"checkpoint=runs:/{run.info.run_id}/model", store, f"output={tmp_path}/m.json"
    )
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
    a = checkpoint.read(next(straight.glob("outputs/*/*/checkpoints/last.pt")))
    b = checkpoint.read(next(split_b.glob("outputs/*/*/checkpoints/last.pt")))
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
    images = Images(
        torch.zeros(8, 1, 4, 4, dtype=torch.uint8), torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.zeros(8, 3, 4, 4)
    )
    model = Colorizer(NaNModel(), Target.rgb)
    epochs = fit(
        Training(
            Split(images, images),
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.MSELoss(),
            Settings(4, progress=False),
            torch.Generator(),
            epochs=3,
        )
    )
    with pytest.raises(ColorizeError, match="diverged: train loss is nan at epoch 1"):
        next(epochs)


def test_hydra_help_lists_every_group_option(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "--help")
    assert result.returncode == 0
    assert "model: convae, convnet, unet" in result.stdout and "optimizer: adam, adamw, sgd" in result.stdout
    assert "loss: bins, l1, log_mse, mse, smooth_l1" in result.stdout
    assert "experiment: best_cpu, best_photo, convae, seed, unet" in result.stdout
    # Keys with their default and meaning, from the schemas' comments; no internal schema/* groups.
    assert "schema/" not in result.stdout
    assert any(
        line.startswith("optimizer.lr") and "0.001  # learning rate" in line for line in result.stdout.splitlines()
    )
    assert any(
        line.startswith("model.out_level") and "0  # Decoder levels left out" in line
        for line in result.stdout.splitlines()
    )


def test_every_key_in_the_reference_has_a_meaning() -> None:
    from colorize import reference

    found = [key for schema in reference.COMMANDS.values() for key in reference.keys(schema)]
    found += [key for group in reference.OPTIONS for _, keys in reference.group_keys(group) for key in keys]
    assert len(found) > 60 and [key.name for key in found if not key.meaning] == []
    assert "| `data.image_size` | `32` | pixels, square |" in reference.markdown()


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_cosine_schedule_decays_the_lr_and_resume_follows_it(tmp_path: Path) -> None:
    straight, first, resumed = tmp_path / "straight", tmp_path / "first", tmp_path / "resumed"
    for root in (straight, first, resumed):
        root.mkdir()
    cosine = ["trainer.lr_schedule=cosine", *QUICK]
    assert run_cli("train", straight, "trainer.epochs=2", *cosine).returncode == 0
    [run] = runs(straight)
    assert [m.value for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "lr")] == pytest.approx(
        [1e-3, 5e-4]
    )
    assert run_cli("train", first, "trainer.epochs=1", *cosine).returncode == 0
    last = next(first.glob("outputs/*/*/checkpoints/last.pt"))
    assert run_cli("train", resumed, "trainer.epochs=2", f"trainer.resume={last}", *cosine).returncode == 0
    a = checkpoint.read(next(straight.glob("outputs/*/*/checkpoints/last.pt")))
    b = checkpoint.read(next(resumed.glob("outputs/*/*/checkpoints/last.pt")))
    assert all(torch.equal(tensor, b["model"][name]) for name, tensor in a["model"].items())


def last_checkpoint(root: Path) -> Path:
    return next(root.glob("outputs/*/*/checkpoints/last.pt"))


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_a_resume_records_what_it_changed_and_refuses_another_model(tmp_path: Path) -> None:
    assert run_cli("train", tmp_path, "trainer.epochs=1", *QUICK).returncode == 0
    first = last_checkpoint(tmp_path)
    stale = atomic.temporary(first)  # left by a process killed mid-write
    stale.write_bytes(b"half")
    refused = run_cli("train", tmp_path, "trainer.epochs=2", "model.width=2", f"trainer.resume={first}", *QUICK)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"colorize: error: trainer.resume={first} was trained with other settings: model.width 1 -> 2 cannot change on resume (start a new run)"
    ]
    resumed = run_cli("train", tmp_path, "trainer.epochs=2", "optimizer.lr=5e-4", f"trainer.resume={first}", *QUICK)
    assert resumed.returncode == 0, resumed.stderr
    [run] = runs(tmp_path)  # the same run, continued
    assert run.data.tags["resume.changed.trainer.epochs"] == "1 -> 2"
    assert run.data.tags["resume.changed.optimizer.lr"] == "0.001 -> 0.0005"
    assert not stale.exists()


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_a_resumed_run_in_a_new_store_logs_its_baselines(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    assert run_cli("train", first, "trainer.epochs=1", *QUICK).returncode == 0
    resumed = run_cli("train", second, "trainer.epochs=2", f"trainer.resume={last_checkpoint(first)}", *QUICK)
    assert resumed.returncode == 0, resumed.stderr
    [run] = runs(second)
    assert "val_gray_copy_psnr" in run.data.metrics and "val_lab_zero_ab_psnr" in run.data.metrics


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_grid_images_zero_means_no_grids(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "trainer.epochs=1", *QUICK, "tracking.grid_images=0")
    assert result.returncode == 0, result.stderr
    [run] = runs(tmp_path)
    assert run.info.status == "FINISHED" and not any(path.startswith("images/") for path in artifacts(run))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "tracking.uri=http://127.0.0.1:9",
            "tracking.uri=http://127.0.0.1:9: no MLflow server answers (ConnectionError)",
        ),
        ("trainer.device=meta", "trainer.device=meta is not a device to train on (auto, cpu, cuda, cuda:N, mps)"),
        (
            "model=convae model.width=2 trainer.batch_size=2 data.image_size=1024",
            "data.image_size=1024 is larger than the sample photos (300 px at most): use data=folder for bigger images",
        ),
    ],
)
def test_run_edges_are_one_line(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli("train", tmp_path, "trainer.epochs=1", *QUICK, *override.split())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"colorize: error: {message}"]


def test_a_model_too_big_for_memory_is_refused_before_it_is_built() -> None:
    from colorize import parts

    config = {"_target_": "colorize.models.unet.UNet", "width": 1000, "depth": 3, "target": "rgb"}
    with pytest.raises(
        ColorizeError, match=r"^the model does not fit: [\d,]+ parameters and about [\d.]+ GiB to train"
    ):
        parts.check_fits(config, 32, 100, torch.device("cpu"))
    parts.check_fits({**config, "width": 8}, 32, 100, torch.device("cpu"))


def test_sigterm_ends_the_run_killed_with_one_line(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "colorize.train", f"paths.root_dir={tmp_path}", "trainer.epochs=50", *QUICK]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for line in process.stdout:  # wait for training to start, not for a fixed time
        if "training starts" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "colorize: interrupted (signal 15)"
    assert "Traceback" not in stderr
    [run] = runs(tmp_path)
    assert run.info.status == "KILLED"


def test_a_checkpoint_that_cannot_be_written_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    first = {"model": {}, "config": {"model": {}}, "epoch": 1}
    checkpoint.write(first, path)

    def full_disk(state: dict, file: Path) -> None:
        file.write_bytes(b"half")  # what torch writes before the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 80768 vs 80720")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ColorizeError) as failed:
        checkpoint.write({**first, "epoch": 2}, path)
    assert re.fullmatch(
        rf"cannot write {re.escape(str(path))} \(RuntimeError: \[enforce fail .*80720\); \d+ MiB free on its disk",
        str(failed.value),
    )
    assert checkpoint.read(path)["epoch"] == 1 and os.listdir(path.parent) == [
        "last.pt"
    ]  # the old one kept, no half file

    def interrupted(state: dict, file: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C stays Ctrl-C
        checkpoint.write({**first, "epoch": 2}, path)
