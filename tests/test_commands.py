import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from omegaconf import OmegaConf

from colorize import checkpoint, colorizer, data
from colorize.data import from_rgb
from tests.conftest import run_cli


@pytest.fixture
def tiny_checkpoint(compose_cfg, tmp_path: Path):
    """An untrained tiny model saved as colorize.train saves it: enough to exercise the commands."""

    def _save(*overrides: str) -> Path:
        cfg = compose_cfg("data.limit=200", *overrides)
        torch.manual_seed(0)
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        model = colorizer.build(cfg.model)
        if hasattr(model.net, "head"):
            # Untrained, with eval-mode batch norm, the net predicts ab far outside the sRGB gamut:
            # a smaller output layer keeps most colours inside it, as a trained model's are.
            model.net.head.weight.data *= 1e-3
            model.net.head.bias.data *= 1e-3
        path = tmp_path / "checkpoints" / "best.pt"
        checkpoint.save({"model": model.state_dict(), "config": config}, path)
        return path

    return _save


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
    assert set(report["metrics"]["model"]) == {"loss", "psnr", "psnr_per_image", "ssim", "colorfulness", "colorfulness_ratio"}
    assert report["metrics"]["gray_copy"]["colorfulness_ratio"] == 0


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
    assert result.stderr.strip().splitlines() == ["colorize: error: checkpoint is required: checkpoint=<path of last.pt/best.pt> or checkpoint=runs:/<run_id>/model"]


def test_colorize_writes_every_readable_photo_and_fails_on_the_corrupt_one(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2", "model.target=lab")
    sizes = write_photos(tmp_path / "photos")
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/photos", f"output={tmp_path}/out")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("colorize: error: 1 of 3 inputs could not be read")
    assert "broken.jpg" in result.stderr
    for name, size in sizes.items():
        written = cv2.imread(str(tmp_path / "out" / name))
        assert written is not None and written.shape == (*size, 3), name
    # A lab model keeps the photo's own L at full resolution: exactly, up to 8-bit rounding, wherever
    # the predicted colour is inside the sRGB gamut (not clipped at 0 or 255).
    original = from_rgb(data.read_rgb(tmp_path / "photos" / "astronaut.jpg")[None]).lab[0, 0]
    colour = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    in_gamut = torch.from_numpy(((colour > 0) & (colour < 255)).all(-1))
    assert in_gamut.float().mean() > 0.5
    assert (from_rgb(colour[None]).lab[0, 0] - original)[in_gamut].abs().mean() < 0.3


def test_colorize_native_resolution_for_one_file(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=convae", "model.width=4", "model.depth=2")
    write_photos(tmp_path / "photos")
    args = (f"checkpoint={ckpt}", f"input={tmp_path}/photos/sub/camera.png", f"output={tmp_path}/out", "resolution=native")
    result = run_cli("colorize", tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "out" / "camera.png")).shape == (33, 41, 3)


def test_colorize_native_needs_a_fully_convolutional_model(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint()  # the seed ConvNet: 32x32 only
    write_photos(tmp_path / "photos")
    result = run_cli("colorize", tmp_path, f"checkpoint={ckpt}", f"input={tmp_path}/photos", f"output={tmp_path}/out", "resolution=native")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("colorize: error: resolution=native needs a fully convolutional model")



def test_a_checkpoint_whose_weights_do_not_fit_is_one_line(tiny_checkpoint, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint("model=unet", "model.width=4", "model.depth=2")
    state = checkpoint.load(ckpt)
    state["config"]["model"]["width"] = 8  # the config no longer describes the saved weights
    checkpoint.save(state, ckpt)
    result = run_cli("evaluate", tmp_path, f"checkpoint={ckpt}")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"colorize: error: checkpoint {ckpt}: its weights do not fit the model in its config")
