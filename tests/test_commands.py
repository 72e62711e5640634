import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from omegaconf import OmegaConf

from colorize import checkpoint, data, wrapper
from colorize.folders import read_rgb
from colorize.images import from_rgb
from colorize.metrics import colorfulness
from tests.conftest import run_cli


def write_photos(folder: Path) -> dict[str, tuple[int, int]]:
    """A colour JPEG, a gray PNG (one channel) in a sub-folder, and a corrupt file; output sizes."""
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "astronaut.jpg"), cv2.cvtColor(skimage.data.astronaut()[:50, :70], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "sub" / "camera.png"), skimage.data.camera()[:33, :41])
    (folder / "broken.jpg").write_bytes(b"not an image")
    return {"astronaut.png": (50, 70), "sub/camera.png": (33, 41)}


def test_evaluate_prints_model_and_baselines_and_writes_json(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=lab", "loss=l1")
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", f"output={tmp_path}/metrics.json")
    assert result.returncode == 0, result.stderr
    assert "held-out split of data=sample" in result.stdout
    for row in ("model", "gray_copy", "lab_zero_ab"):
        assert f"\n{row} " in result.stdout
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["images"] == 40 and report["model_target"] == "lab"  # 0.2 of data.limit=200
    assert set(report["metrics"]) == {"model", "gray_copy", "lab_zero_ab"}
    columns = {
        "psnr",
        "psnr_per_image",
        "ssim",
        "colorfulness",
        "colorfulness_ratio",
        "colorfulness_gap",
        "mean_ab_close",
        "auc",
        "auc_rebalanced",
    }
    assert set(report["metrics"]["model"]) == {"loss", *columns} and set(report["metrics"]["gray_copy"]) == columns
    assert report["metrics"]["gray_copy"]["colorfulness_ratio"] == 0


def test_evaluate_scores_each_photo_at_its_own_size_against_the_gray_copy(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(
        "model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr"
    )  # untrained: the gray copy
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "wide.jpg"), cv2.cvtColor(skimage.data.astronaut()[:60, :90], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "tall.png"), cv2.cvtColor(skimage.data.coffee()[:77, :41], cv2.COLOR_RGB2BGR))
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", f"input={photos}", f"output={tmp_path}/photos.json")
    assert result.returncode == 0, result.stderr
    assert "each at its own size" in result.stdout and "of the photos" in result.stdout
    report = json.loads((tmp_path / "photos.json").read_text())
    assert report["images"] == 2 and [Path(p["file"]).name for p in report["photos"]] == ["tall.png", "wide.jpg"]
    for photo in report["photos"]:  # an untrained ycbcr model returns the photo's gray: the gray copy's scores
        assert photo["psnr"] == pytest.approx(photo["gray_copy_psnr"], abs=1e-3)
    model, gray_copy = report["metrics"]["model"], report["metrics"]["gray_copy"]
    assert (
        model["psnr_per_image"] == pytest.approx(gray_copy["psnr_per_image"], abs=1e-3)
        and model["colorfulness_ratio"] == 0
    )
    assert (
        model["auc_rebalanced"] == pytest.approx(gray_copy["auc_rebalanced"], abs=1e-3)
        and model["auc_rebalanced"] < model["auc"]
    )
    unreadable = photos / "broken.jpg"
    unreadable.write_bytes(b"not an image")
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}", f"input={unreadable}")
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"colorize: error: input: {unreadable} cannot be read as an image"
    ]


def test_a_model_is_read_out_at_the_temperature_and_saturation_asked_for(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(
        "model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr", "model.bins=4", "loss=bins"
    )
    model, _ = checkpoint.load_model(str(ckpt), "", temperature=0.1)
    assert model.temperature == 0.1
    plain = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr")
    result = run_cli("evaluate", tmp_path, f"checkpoint={plain}", "temperature=0.5")
    assert (
        result.returncode == 1
        and "only a bins model has a read-out temperature" in result.stderr.strip().splitlines()[-1]
    )
    assert checkpoint.load_model(str(plain), "", saturation=1.5)[0].saturation == 1.5
    rgb = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2")
    result = run_cli("evaluate", tmp_path, f"checkpoint={rgb}", "saturation=1.5")
    assert (
        result.returncode == 1
        and "only lab and ycbcr models predict a colour to scale" in result.stderr.strip().splitlines()[-1]
    )
    result = run_cli(
        "colorize", tmp_path, f"checkpoint={ckpt}", "temperature=0", f"input={tmp_path}", f"output={tmp_path}/out"
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "colorize: error: temperature=0.0 must be finite and > 0"
    ]


def test_evaluate_uses_the_test_folder_beside_train(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for part, count in (("train", 10), ("test", 4)):
        (tmp_path / part).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / part / f"{i}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    spec = data.Source("folder", str(tmp_path / "train"), 32, 0.2, 0, None, False, tmp_path / "cache")
    images, name = data.load_test(spec, torch.device("cpu"))
    assert len(images) == 4 and "test folder" in name
    spec = data.Source("folder", str(tmp_path / "test"), 32, 0.5, 0, None, False, tmp_path / "cache")
    held_out, name = data.load_test(spec, torch.device("cpu"))
    assert len(held_out) == 2 and "held-out" in name  # no test/ beside test/: half of it, held out


def test_evaluate_without_checkpoint_is_one_line(tmp_path: Path) -> None:
    result = run_cli("evaluate", tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "colorize: error: checkpoint is required: checkpoint=<path of last.pt/best.pt>, runs:/<run_id>/model or models:/<name>@<alias>"
    ]


def test_colorize_writes_every_readable_photo_and_fails_on_the_corrupt_one(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=lab")
    sizes = write_photos(tmp_path / "photos")
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("colorize: error: 1 of 3 inputs were not written")
    assert "broken.jpg" in result.stderr
    for name, size in sizes.items():
        written = cv2.imread(str(tmp_path / "out" / name))
        assert written is not None and written.shape == (*size, 3), name
    # A lab model keeps the photo's own L at full resolution: exactly, up to 8-bit rounding, wherever
    # the predicted colour is inside the sRGB gamut (not clipped at 0 or 255).
    original = from_rgb(read_rgb(tmp_path / "photos" / "astronaut.jpg")[None]).lab[0, 0]
    colour = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    in_gamut = torch.from_numpy(((colour > 0) & (colour < 255)).all(-1))
    assert in_gamut.float().mean() > 0.5
    assert (from_rgb(colour[None]).lab[0, 0] - original)[in_gamut].abs().mean() < 0.3


def test_colorize_native_resolution_for_one_file(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    write_photos(tmp_path / "photos")
    args = (
        f"checkpoint={ckpt}",
        f"input={tmp_path}/photos/sub/camera.png",
        f"output={tmp_path}/out",
        "resolution=native",
    )
    result = run_cli("colorize", tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "out" / "camera.png")).shape == (33, 41, 3)


def test_colorize_native_needs_a_fully_convolutional_model(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint()  # the seed ConvNet: 32x32 only
    write_photos(tmp_path / "photos")
    result = run_cli(
        "colorize",
        tmp_path,
        f"checkpoint={ckpt}",
        f"input={tmp_path}/photos",
        f"output={tmp_path}/out",
        "resolution=native",
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("colorize: error: resolution=native needs a fully convolutional model")
    )


def test_a_checkpoint_whose_weights_do_not_fit_is_one_line(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2")
    state = checkpoint.read(ckpt)
    state["config"]["model"]["width"] = 8  # the config no longer describes the saved weights
    checkpoint.write(state, ckpt)
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"colorize: error: checkpoint {ckpt}: its weights do not fit the model in its config")


def gray_photo_files(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), cv2.cvtColor(skimage.data.astronaut()[:40, :60], cv2.COLOR_RGB2BGR))


def test_colorize_never_writes_over_its_inputs(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    photos = tmp_path / "photos"
    gray_photo_files(photos, ["a.png", "b.png"])
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={photos}", f"output={photos}")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"colorize: error: output={photos} would overwrite the input {photos}/a.png")
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_colorize_refuses_two_inputs_for_one_output_name(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    gray_photo_files(tmp_path / "photos", ["a.jpg", "a.png"])
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "a.jpg and" in line and "a.png would both be written to" in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_colorize_counts_only_files_it_wrote(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    gray_photo_files(tmp_path / "photos", ["a.jpg", "b.jpg"])
    (tmp_path / "out" / "a.png").mkdir(parents=True)  # where a.png should go, a folder: writing fails
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
    assert result.returncode == 1
    assert "wrote 1 of 2 photos" in result.stdout
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"colorize: error: 1 of 2 inputs were not written (first: cannot write {tmp_path}/out/a.png: it is a folder)"
        )
    )
    assert cv2.imread(str(tmp_path / "out" / "b.png")) is not None
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no half-written file left


@pytest.mark.parametrize("case", ["output is a file", "empty input folder"])
def test_colorize_bad_places_are_one_line(tiny_checkpoint, tmp_path: Path, case: str) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    gray_photo_files(tmp_path / "photos", ["a.jpg"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    source, output, message = {
        "output is a file": ("photos", "file.txt", f"output={tmp_path}/file.txt is a file: give a folder for the PNGs"),
        "empty input folder": ("empty", "out", f"input={tmp_path}/empty holds no .jpg/.jpeg/.png images"),
    }[case]
    result = run_cli(
        "colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/{source}", f"output={tmp_path}/{output}"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"colorize: error: {message}"]


@pytest.mark.parametrize("target", ["rgb", "ycbcr", "lab"])
def test_the_photo_command_keeps_the_photos_luminance_on_every_pixel(compose_cfg, tmp_path: Path, target: str) -> None:
    """A model that predicts colour far outside the sRGB gamut, on a saturated photo at a size it was
    not trained at: the colour is scaled down to fit, never clipped per channel, so the luminance holds."""
    cfg = compose_cfg("data.limit=200", "model=unet", "model.width=4", "model.depth=2", f"model.target={target}")
    torch.manual_seed(0)
    model = wrapper.colorizer(cfg.model)
    torch.nn.init.normal_(model.net.head.weight, std=5.0)  # strong colour: most pixels out of gamut
    checkpoint.write(
        {"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)},
        tmp_path / "strong.pt",
    )
    photo = cv2.resize(skimage.data.astronaut(), (451, 300), interpolation=cv2.INTER_AREA)  # not square, not 32 px
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "astronaut.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    result = run_cli(
        "colorize", tmp_path, f"checkpoint={tmp_path}/strong.pt", f"input={tmp_path}/photos", f"output={tmp_path}/out"
    )
    assert result.returncode == 0, result.stderr
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    assert written.shape == photo.shape
    assert (
        colorfulness(torch.from_numpy(written).permute(2, 0, 1)[None] / 255).item() > 15
    )  # strong colour indeed (the gray copy: 0)
    if target == "lab":
        drift = (from_rgb(written[None]).lab[0, 0] - from_rgb(photo[None]).lab[0, 0]).abs()
        assert drift.max() <= 0.5, f"L moved by up to {drift.max():.2f}"
    else:
        drift = np.abs(
            cv2.cvtColor(written, cv2.COLOR_RGB2GRAY).astype(int) - cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(int)
        )
        assert drift.max() <= 1, f"gray kept within 1 level on {(drift <= 1).mean():.3f} of pixels"


def test_the_net_sees_a_photo_at_its_aspect_ratio() -> None:
    from colorize.photo import prepare

    photo = np.zeros((100, 200, 3), np.uint8)
    assert prepare(photo, 32, False, "trained", torch.device("cpu")).view.shape == (
        1,
        3,
        32,
        64,
    )  # the shorter side at the training size
    assert prepare(photo, 32, True, "trained", torch.device("cpu")).view.shape == (
        1,
        3,
        16,
        32,
    )  # fitted whole into the fixed size
    assert prepare(photo, 32, False, "native", torch.device("cpu")).view.shape == (1, 3, 100, 200)
