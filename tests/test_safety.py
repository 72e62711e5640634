"""Nothing lost, nobody in: no command writes over its inputs or leaves half a file, a checkpoint
someone hands over runs no code, runs started together share a new folder's cache, and bad input is
one line. (Passwords: tests/test_scale_out.py greps everything a run and a sweep write against live servers.)"""

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import optuna
import pytest
import skimage.data
import torch
from omegaconf import OmegaConf

from colorize import atomic, checkpoint, cli
from colorize.errors import ColorizeError
from colorize.folders import read_rgb
from tests.conftest import run_cli, runs
from tests.test_sweep import sweep_cmd, trials


def huge_png() -> bytes:
    """A PNG whose header claims 60,000 x 60,000 pixels, past OpenCV's limit (CV_IO_MAX_IMAGE_PIXELS)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def photo(folder: Path, name: str, rgb: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder / name


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


# --- nothing lost ---------------------------------------------------------------------------------


def test_evaluate_never_writes_over_its_inputs_a_folder_or_another_file(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr")
    photos = tmp_path / "photos"
    kept = photo(photos, "p1.png", skimage.data.astronaut()[:40, :60])
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    before = {path: path.read_bytes() for path in (ckpt, kept, notes)}
    cases = {
        f"output={ckpt}": "would overwrite an input of this command",
        f"input={photos} output={kept}": "would overwrite an input of this command",
        f"output={photos}": "is a folder: give the path of the JSON report to write",
        f"output={notes}": "exists and is not a report of colorize.evaluate",
    }
    for given, message in cases.items():
        result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", *given.split())
        assert result.returncode == 1 and message in one_line(result), given
    assert {path: path.read_bytes() for path in before} == before
    report = tmp_path / "report.json"  # an earlier report is written over: evaluate run again
    for _ in range(2):
        assert run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", f"output={report}").returncode == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(
        ColorizeError, match=rf"cannot write {target} \(OSError: .*No space left on device\); \d+ MiB free on its disk"
    ):
        atomic.write(target, full_disk)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]
    with pytest.raises(ColorizeError, match="it is a folder"):
        atomic.write(tmp_path, lambda tmp: tmp.write_bytes(b"x"))


def test_two_writers_of_one_file_at_once_both_finish_whole(tmp_path: Path) -> None:
    """Runs started together on a new folder each write its cache: the second writer starts while the
    first one's file is open, and each rename must find its own temporary file."""
    cache = tmp_path / "cache.npz"

    def save(rgb: np.ndarray) -> Callable[[Path], None]:
        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as file:
                np.save(file, rgb)

        return fill

    def first(tmp: Path) -> None:
        save(np.zeros(3))(tmp)
        atomic.write(cache, save(np.ones(3)))  # another process, meanwhile

    atomic.write(cache, first)
    assert np.load(cache).tolist() == [0, 0, 0] and os.listdir(tmp_path) == ["cache.npz"]  # the last rename wins, whole


@pytest.mark.slow
def test_runs_started_together_on_a_new_folder_all_train(tmp_path: Path) -> None:
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(300):
        photo(images, f"{i:03}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    common = [
        "-m",
        "colorize.train",
        f"paths.root_dir={tmp_path}",
        "data=folder",
        f"data.root={images}",
        "trainer.epochs=1",
        "trainer.progress=false",
        "tracking.grid_images=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = [
        subprocess.Popen([sys.executable, *common, *extra], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        for extra in ([], [], ["data.in_memory=false", "data.workers=0"])
    ]
    for process in started:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    assert len(list((tmp_path / ".cache").glob("folder-*.npz"))) == 1 and not list((tmp_path / ".cache").glob(".*.tmp"))
    assert sorted(r.info.status for r in runs(tmp_path)) == ["FINISHED"] * 3


# --- nobody in ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["nested in the model", "the model", "the loss"])
def test_a_crafted_checkpoint_runs_no_code(tiny_checkpoint, tmp_path: Path, where: str) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr")
    victim, copied = tmp_path / "victim.txt", tmp_path / "copied.txt"
    victim.write_text("precious")
    state = checkpoint.read(ckpt)
    copy = {"_target_": "shutil.copyfile", "src": str(victim), "dst": str(copied)}
    if where == "nested in the model":
        state["config"]["model"]["depth"] = copy
    elif where == "the model":
        state["config"]["model"] = {**copy, "target": "rgb"}
    else:
        state["config"]["loss"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    checkpoint.write(state, ckpt)
    photo(tmp_path / "photos", "a.png", skimage.data.astronaut()[:40, :60])
    for command, *given in (("evaluate",), ("colorize", f"input={tmp_path}/photos", f"output={tmp_path}/out")):
        result = run_cli(command, tmp_path, f"checkpoint={ckpt}", *given)
        if where == "the loss" and command == "colorize":
            assert result.returncode == 0, result.stderr  # the photo command builds no loss
            continue
        assert result.returncode == 1 and one_line(result).endswith("refused"), result.stderr[-2000:]
    assert victim.read_text() == "precious" and not copied.exists()


@pytest.mark.parametrize("content", ["a tensor", "a list", "a config that is a string"])
def test_a_checkpoint_that_is_not_colorizes_is_one_line(tmp_path: Path, content: str) -> None:
    bogus = tmp_path / "bogus.pt"
    torch.save(
        {"a tensor": torch.zeros(3), "a list": [1, 2], "a config that is a string": {"model": {}, "config": "x"}}[
            content
        ],
        bogus,
    )
    photo(tmp_path / "photos", "a.png", skimage.data.astronaut()[:40, :60])
    expected = (
        f"colorize: error: checkpoint {bogus} holds no model weights and config: it was not written by colorize.train"
    )
    assert one_line(run_cli("evaluate", tmp_path, f"checkpoint={bogus}")) == expected
    if content != "a tensor":
        return  # the three commands read a checkpoint through one function: each is tried on one kind
    assert (
        one_line(
            run_cli("colorize", tmp_path, f"checkpoint={bogus}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
        )
        == expected
    )
    resumed = run_cli("train", tmp_path, f"trainer.resume={bogus}", "data.limit=100", "trainer.progress=false")
    assert resumed.returncode == 1 and one_line(resumed) == expected
    assert [r.info.status for r in runs(tmp_path)] == []  # refused before any run started


# --- one line, not a traceback --------------------------------------------------------------------


def test_an_image_beyond_opencvs_pixel_limit_is_a_bad_image_like_any_other(tiny_checkpoint, tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(20):
        photo(images, f"{i:02}.png", np.full((32, 32, 3), 10 * i, np.uint8))
    (images / "huge.png").write_bytes(huge_png())
    assert read_rgb(images / "huge.png") is None
    trained = run_cli(
        "train",
        tmp_path,
        "data=folder",
        f"data.root={images}",
        "data.on_bad_image=skip",
        "trainer.epochs=1",
        "trainer.progress=false",
        "tracking.grid_images=0",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "skipped 1 unreadable images" in trained.stderr + trained.stdout
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    coloured = run_cli(
        "colorize", tmp_path, f"checkpoint={ckpt}", f"input={images}", f"output={tmp_path}/out", "progress=false"
    )
    assert coloured.returncode == 1 and "1 of 21 inputs were not written" in one_line(coloured)
    assert len(list((tmp_path / "out").glob("*.png"))) == 20  # the rest of the folder was coloured


def test_evaluate_applies_data_keys_to_the_checkpoints_own_data(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2")  # trained with data.limit=200
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", "data.limit=100", f"output={tmp_path}/m.json")
    assert result.returncode == 0, result.stderr
    assert OmegaConf.load(tmp_path / "m.json")["images"] == 20  # 0.2 of the 100


@pytest.mark.parametrize(
    "given, message",
    [
        ("tracking.uri=${no.such.key}", "colorize: error: tracking.uri: Interpolation key 'no.such.key' not found"),
        (
            "tracking.uri=${oc.env:COLORIZE_UNSET}",
            "colorize: error: tracking.uri: Environment variable 'COLORIZE_UNSET' not found",
        ),
        ("paths.root_dir=${oc.env:COLORIZE_UNSET}", "Environment variable 'COLORIZE_UNSET' not found"),
        ("tracking.experiment=", "colorize: error: tracking.experiment= must name an MLflow experiment, not be empty"),
    ],
)
def test_a_config_that_cannot_resolve_is_one_line(tmp_path: Path, given: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "colorize.train", f"paths.root_dir={tmp_path}", given, "data.limit=100"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1 and message in one_line(result)
    assert not (tmp_path / "outputs").exists() or given.startswith("tracking.experiment")


def test_ctrl_c_is_named(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "colorize.train", f"paths.root_dir={tmp_path}", "trainer.epochs=50", "data.limit=600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        if "training starts" in line:
            break
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)[0]
    assert (
        process.returncode == cli.INTERRUPTED_EXIT and rest.strip().splitlines()[-1] == "colorize: interrupted (Ctrl-C)"
    )


def test_a_sweep_stopped_by_sigterm_is_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    process = subprocess.Popen(
        sweep_cmd(tmp_path, "sweep=smoke", "trainer.epochs=30", "hydra.sweeper.n_trials=2"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Mid-trial: its first checkpoint is written (the study is not opened from here meanwhile: a
    # second process creating the new SQLite file's tables would race the sweep's).
    while not list((tmp_path / "sweeps").rglob("last.pt")):
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == cli.INTERRUPTED_EXIT
    assert (
        stderr.strip().splitlines()[-1] == "hydra-optuna-async-sweeper: interrupted (signal 15)"
        and "Traceback" not in stderr
    )
    assert [t.state for t in trials(tmp_path)] == [optuna.trial.TrialState.FAIL]
    assert {r.info.status for r in runs(tmp_path)} == {"KILLED"}  # the trial's run and the parent run


def test_the_app_and_the_sweeper_mask_passwords_alike() -> None:
    # Two distributions, so two copies of one rule: the sweeper (a plugin for any Hydra app) never
    # imports colorize, and colorize does not reach into the plugin's private modules.
    from colorize import secrets
    from hydra_plugins.hydra_optuna_async_sweeper import _errors

    urls = [
        "postgresql://user:pw@db/optuna",
        "postgresql://:pw@db/optuna",
        "http://u:p%40ss@host:5000",
        "sqlite:///a/b.db",
        "mysql://a:b@h/x and http://c:d@e",
        "no url",
    ]
    assert [secrets.mask(url) for url in urls] == [_errors.mask(url) for url in urls]
    assert secrets.mask(urls[0]) == "postgresql://user:***@db/optuna" and secrets.mask(urls[3]) == urls[3]
