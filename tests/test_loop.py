from pathlib import Path

import pytest
import torch
from torch import nn

from colorize import data
from colorize.config import Target
from colorize.images import Images, Split, from_rgb
from colorize.loop import Settings, Training, train_epoch
from colorize.models.convnet import ConvNet
from colorize.wrapper import Colorizer
from tests.conftest import QUICK, run_cli, runs


@pytest.fixture(scope="module")
def patches() -> Images:
    return from_rgb(data.load_sample(32)[::20])  # about 290 photo patches


@pytest.mark.parametrize(
    "settings, compile_model",
    [
        (Settings(50, progress=False), False),
        (Settings(50, autocast=torch.bfloat16, progress=False), False),
        (Settings(50, channels_last=True, progress=False), False),
        pytest.param(Settings(50, progress=False), True, marks=pytest.mark.slow),  # ~30 s of compiling: -m slow
    ],
    ids=["fp32", "bf16", "channels_last", "compile"],
)
def test_training_modes_give_finite_decreasing_loss(patches: Images, settings: Settings, compile_model: bool) -> None:
    torch.manual_seed(0)
    model = Colorizer(ConvNet(), Target.rgb)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_model:
        model.net.compile()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    shuffle = torch.Generator().manual_seed(0)
    training = Training(Split(patches, patches), model, optimizer, nn.MSELoss(), settings, shuffle, epochs=4)
    losses = [train_epoch(training) for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_cli_bf16_channels_last_run_finishes(tmp_path: Path) -> None:
    result = run_cli(
        "train", tmp_path, "trainer.epochs=1", "trainer.precision=bf16", "trainer.channels_last=true", *QUICK
    )
    assert result.returncode == 0, result.stderr
    assert "precision bf16" in result.stdout
    [run] = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["trainer.precision"] == "bf16"


def test_cli_rejects_unknown_precision(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path, "trainer.precision=fp8")
    assert result.returncode != 0
    assert result.stderr.strip() == "colorize: error: trainer.precision=fp8 must be auto, 32 or bf16"
