import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
import torch

from colorize import data, stream, wrapper
from colorize.config import Target
from colorize.errors import ColorizeError
from colorize.loop import Settings, Training, train_epoch
from tests.conftest import QUICK, run_cli, runs


def photo_folder(folder: Path, count: int, size: tuple[int, int] = (48, 56)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        (folder / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        smooth = cv2.resize(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"c{i % 3}" / f"{i:03d}.jpg"), smooth)
    return folder


def source(tmp_path: Path, **changes) -> data.Source:
    base = data.Source("folder", str(tmp_path / "photos"), 32, 0.25, 0, None, False, tmp_path / "cache", workers=0)
    return replace(base, **changes)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_gives_the_in_memory_tensors(tmp_path: Path, workers: int) -> None:
    photo_folder(tmp_path / "photos", 24)
    spec = source(tmp_path, workers=workers)
    held = data.load_split(spec, torch.device("cpu"), with_lab=True)
    streamed = stream.load_split(spec, torch.device("cpu"), with_lab=True)
    for part in ("train", "val"):
        a, b = getattr(held, part), getattr(streamed, part)
        assert len(a) == len(b)
        order = torch.randperm(len(a), generator=torch.Generator().manual_seed(1))
        for x, y in zip(a.batches(5, order), b.batches(5, order), strict=True):
            assert torch.equal(x.rgb, y.rgb) and torch.equal(x.gray, y.gray)
            assert torch.allclose(x.lab, y.lab)


def test_streaming_trains_the_same_first_epoch(tmp_path: Path) -> None:
    photo_folder(tmp_path / "photos", 40)
    spec = source(tmp_path)
    losses = []
    for split in (
        data.load_split(spec, torch.device("cpu"), False),
        stream.load_split(spec, torch.device("cpu"), False),
    ):
        torch.manual_seed(0)
        model = wrapper.colorizer(
            {"_target_": "colorize.models.convae.ConvAE", "width": 4, "depth": 2, "target": Target.rgb}
        )
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        shuffle = torch.Generator().manual_seed(0)
        losses.append(
            train_epoch(
                Training(split, model, optimizer, torch.nn.MSELoss(), Settings(8, progress=False), shuffle, epochs=1)
            )
        )
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_streaming_follows_on_bad_image(tmp_path: Path) -> None:
    photo_folder(tmp_path / "photos", 12)
    (tmp_path / "photos" / "c0" / "broken.jpg").write_bytes(b"not a jpeg")
    strict = stream.load_split(source(tmp_path), torch.device("cpu"), False)
    with pytest.raises(Exception, match="broken.jpg.*data.on_bad_image=skip"):
        [None for part in (strict.train, strict.val) for _ in part.batches(4)]
    lenient = stream.load_split(source(tmp_path, skip_bad=True), torch.device("cpu"), False)
    assert sum(len(b) for part in (lenient.train, lenient.val) for b in part.batches(4)) == 12


def test_augmented_batches_are_random_crops_and_flips(tmp_path: Path) -> None:
    photo_folder(tmp_path / "photos", 16, size=(72, 72))
    spec = source(tmp_path, augment="crop", image_size=64)
    cut = []
    for split in (
        data.load_split(spec, torch.device("cpu"), False, torch.Generator().manual_seed(0)),
        stream.load_split(spec, torch.device("cpu"), False, torch.Generator().manual_seed(0)),
    ):
        assert split.val.head(3).rgb.shape == (3, 3, 64, 64)
        first, second = (next(split.train.batches(4, torch.arange(4))) for _ in range(2))
        assert first.rgb.shape == (4, 3, 64, 64) and first.gray.shape == (4, 1, 64, 64)
        assert not torch.equal(first.rgb, second.rgb)  # the same images, cut and flipped anew
        cut.append((first, second, next(split.val.batches(4, torch.arange(4)))))
    # One crop and flip (Cropped) for both paths: the same generator cuts the same windows.
    for held, streamed in zip(*cut, strict=True):
        assert torch.equal(held.rgb, streamed.rgb) and torch.equal(held.gray, streamed.gray)


def test_flip_only_mirrors_whole_images(tmp_path: Path) -> None:
    photo_folder(tmp_path / "photos", 16, size=(32, 32))
    spec = source(tmp_path, augment="flip")
    for split in (
        data.load_split(spec, torch.device("cpu"), False, torch.Generator().manual_seed(0)),
        stream.load_split(spec, torch.device("cpu"), False),
    ):
        plain = next(data.load_split(source(tmp_path), torch.device("cpu"), False).train.batches(12, torch.arange(12)))
        flipped = next(split.train.batches(12, torch.arange(12)))
        mirrored = [torch.equal(f, p.flip(-1)) and not torch.equal(f, p) for f, p in zip(flipped.rgb, plain.rgb)]
        kept = [torch.equal(f, p) for f, p in zip(flipped.rgb, plain.rgb)]
        assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < 12


def test_in_memory_auto_says_what_it_chose(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    photo_folder(tmp_path / "photos", 4)
    caplog.set_level("INFO")
    assert not stream.wanted(source(tmp_path, in_memory="auto"), torch.device("cpu"), False)
    assert "data.in_memory=auto: 4 images take 0.0 GiB decoded" in caplog.text and "held in memory" in caplog.text
    assert stream.wanted(source(tmp_path, in_memory="false"), torch.device("cpu"), False)


def test_a_64_pixel_folder_trains_evaluates_and_colours_end_to_end(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", 30, size=(80, 96))
    args = [
        "data=folder",
        f"data.root={photos}",
        "data.image_size=64",
        "data.augment=crop",
        "data.in_memory=false",
        "data.workers=1",
        "model=unet",
        "model.width=4",
        "model.depth=3",
        "trainer.epochs=2",
        "trainer.batch_size=8",
        "trainer.progress=false",
        "tracking.grid_images=2",
    ]
    trained = run_cli("train", tmp_path, *args)
    assert trained.returncode == 0, trained.stderr
    [run] = runs(tmp_path)
    assert (
        run.info.status == "FINISHED" and "streaming" not in trained.stdout
    )  # chosen by data.in_memory=false, not auto
    best = next(tmp_path.glob("outputs/*/*/checkpoints/best.pt"))
    evaluated = run_cli("evaluate", tmp_path, f"checkpoint={best}", f"output={tmp_path}/m.json")
    assert evaluated.returncode == 0, evaluated.stderr
    coloured = run_cli(
        "colorize",
        tmp_path,
        f"checkpoint={best}",
        f"input={photos}/c0/000.jpg",
        f"output={tmp_path}/out",
        "resolution=native",
    )
    assert coloured.returncode == 0, coloured.stderr
    assert cv2.imread(str(tmp_path / "out" / "000.png")).shape == (80, 96, 3)


def torchrun(root: Path, nproc: int, *overrides: str) -> subprocess.CompletedProcess:
    args = ["--standalone", f"--nproc_per_node={nproc}", "-m", "colorize.train", f"paths.root_dir={root}", *overrides]
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args], capture_output=True, text=True, timeout=600, cwd=root
    )


def test_torchrun_two_processes_train_one_run(tmp_path: Path) -> None:
    together, alone, resumed = tmp_path / "together", tmp_path / "alone", tmp_path / "resumed"
    for root in (together, alone, resumed):
        root.mkdir()
    common = ["model=convae", "model.width=4", "model.depth=2", "trainer.batch_size=50", *QUICK]
    result = torchrun(together, 2, "trainer.epochs=2", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = runs(together)  # rank 0 alone tracks
    assert run.info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    checkpoints = list(together.glob("outputs/*/*/checkpoints/*.pt"))
    assert len({path.parent for path in checkpoints}) == 1  # one folder: rank 0's
    assert run_cli("train", alone, "trainer.epochs=2", *common).returncode == 0
    [single] = runs(alone)
    # The same global batch of 50: each process takes 25 of it, and BatchNorm sees 25 images at a time.
    assert run.data.metrics["train_loss"] == pytest.approx(single.data.metrics["train_loss"], rel=0.1)
    assert run.data.metrics["val_loss"] == pytest.approx(single.data.metrics["val_loss"], rel=0.1)
    last = next(path for path in checkpoints if path.name == "last.pt")
    again = torchrun(resumed, 2, "trainer.epochs=3", f"trainer.resume={last}", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    [continued] = runs(resumed)
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(continued.info.run_id, "train_loss")] == [3]


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_a_sweep_trial_may_itself_run_on_two_processes(tmp_path: Path) -> None:
    import optuna

    # What the sweeper hands a job, given by hand: the trial's id, its study and storage.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    job = [
        "hydra/sweeper=optuna_async",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=s",
        f"hydra.sweeper.trial_id={trial._trial_id}",
    ]
    result = torchrun(
        tmp_path,
        2,
        "model=convae",
        "model.width=4",
        "model.depth=2",
        "trainer.batch_size=50",
        "trainer.epochs=2",
        *QUICK,
        *job,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [done] = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert done.state == optuna.trial.TrialState.RUNNING  # the sweeper ends it, from what the job returns
    assert sorted(done.intermediate_values) == [1, 2]  # each epoch reported once, by rank 0
    [run] = runs(tmp_path)
    assert run.info.run_name == "s-trial-0" and run.info.status == "FINISHED"


@pytest.mark.parametrize("load", [data.load_split, stream.load_split], ids=["in_memory", "streamed"])
def test_extra_folders_join_the_train_part_only(tmp_path: Path, compose_cfg, load) -> None:
    photo_folder(tmp_path / "photos", 24)
    photo_folder(tmp_path / "more", 10, size=(70, 90))  # bigger photos: resized and cut like the rest
    cfg = compose_cfg(
        "data=folder", f"data.root={tmp_path / 'photos'}", f"data.extra=[{tmp_path / 'more'}]", "data.val_fraction=0.25"
    )
    spec = replace(data.Source.from_config(cfg.data, str(tmp_path / "cache")), workers=0)
    alone = load(replace(spec, extra=()), torch.device("cpu"), False)
    split = load(spec, torch.device("cpu"), False)
    assert (len(split.train), len(split.val)) == (18 + 10, 6)
    first = next(split.val.batches(6, torch.arange(6)))
    assert torch.equal(first.rgb, next(alone.val.batches(6, torch.arange(6))).rgb)  # the val part is root's alone
    with pytest.raises(ColorizeError, match=f"^data.extra={tmp_path / 'none'} holds no .jpg/.jpeg/.png images$"):
        load(replace(spec, extra=(str(tmp_path / "none"),)), torch.device("cpu"), False)
