from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from colorize import data
from colorize.color import gray
from colorize.errors import ColorizeError
from colorize.folders import list_images, load_folder, read_rgb, resize_center_crop
from colorize.images import from_rgb


def write_images(folder: Path, count: int, size: int = 40) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"class{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i:03d}.png"), rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8))


def test_gray_is_opencvs_conversion_on_every_colour() -> None:
    every = np.stack(np.meshgrid(*[np.arange(256, dtype=np.uint8)] * 3, indexing="ij"), -1).reshape(4096, 4096, 3)
    ours = gray(torch.from_numpy(every).permute(2, 0, 1)[None])[0, 0].numpy()
    assert np.array_equal(ours, cv2.cvtColor(every, cv2.COLOR_RGB2GRAY))  # all 2^24 colours
    weighted = every.astype(float) @ [0.299, 0.587, 0.114]  # ITU-R BT.601, OpenCV's weights
    assert np.abs(ours - weighted).max() <= 1


def test_images_hold_gray_once_as_uint8() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    images = from_rgb(rgb)
    assert images.gray.dtype == images.rgb.dtype == torch.uint8
    assert images.gray.shape == (5, 1, 32, 32) and images.rgb.shape == (5, 3, 32, 32)
    assert np.array_equal(images.gray[2, 0].numpy(), cv2.cvtColor(rgb[2], cv2.COLOR_RGB2GRAY))


def test_split_is_deterministic_and_disjoint() -> None:
    # Tag each image with its index in the red channel so the parts can be compared.
    rgb = np.zeros((250, 8, 8, 3), dtype=np.uint8)
    rgb[:, 0, 0, 0] = np.arange(250)
    images = from_rgb(rgb)
    ids = lambda part: set(part.rgb[:, 0, 0, 0].tolist())  # noqa: E731
    a, b, c = (data.split(images, 0.2, seed) for seed in (7, 7, 8))
    assert ids(a.train) == ids(b.train) and ids(a.val) == ids(b.val)
    assert ids(a.val) != ids(c.val)
    assert not ids(a.train) & ids(a.val)
    assert len(a.val) == 50 and len(a.train) == 200
    limited = data.split(images, 0.2, 7, limit=100)
    assert len(limited.val) == 20 and len(limited.train) == 80


def test_sample_is_offline_photo_patches() -> None:
    rgb = data.load_sample(32)
    assert rgb.shape[1:] == (32, 32, 3) and rgb.dtype == np.uint8
    assert len(rgb) >= 5000
    assert np.array_equal(rgb, data.load_sample(32))  # deterministic


def test_folder_recursive_resized_and_cached(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 6)
    first = load_folder(tmp_path / "imgs", 32, skip_bad=False, cache_dir=tmp_path / "cache")
    assert first.shape == (6, 32, 32, 3)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert np.array_equal(first, load_folder(tmp_path / "imgs", 32, False, tmp_path / "cache"))
    write_images(tmp_path / "imgs", 7)  # one more file: a new cache entry
    assert len(load_folder(tmp_path / "imgs", 32, False, tmp_path / "cache")) == 7
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_folder_with_corrupt_image_errors_or_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path / "imgs", 4)
    bad = tmp_path / "imgs" / "class0" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ColorizeError, match="broken.jpg.*data.on_bad_image=skip"):
        load_folder(tmp_path / "imgs", 32, skip_bad=False, cache_dir=tmp_path / "cache")
    assert len(load_folder(tmp_path / "imgs", 32, skip_bad=True, cache_dir=tmp_path / "cache")) == 4
    assert "skipped 1 unreadable images" in caplog.text


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ColorizeError, match="holds no .jpg"):
        load_folder(tmp_path / "empty", 32, False, tmp_path / "cache")


def test_resize_center_crop_keeps_the_middle() -> None:
    rgb = np.zeros((64, 128, 3), dtype=np.uint8)
    rgb[:, 32:96] = 255  # the central square is white, the sides black
    out = resize_center_crop(rgb, 32)
    assert out.shape == (32, 32, 3) and out.min() == 255


def test_cifar10_jpeg_folder_loads(cifar_train: Path, tmp_path: Path) -> None:
    rgb = load_folder(cifar_train, 32, skip_bad=False, cache_dir=tmp_path)
    assert rgb.shape == (30_000, 32, 32, 3)
    # The layout is train/<class>/NNNN.jpg: ten classes of 3,000.
    assert len({Path(p).parent.name for p in list_images(cifar_train)}) == 10


def test_the_cache_follows_on_bad_image(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    assert len(load_folder(tmp_path / "imgs", 32, skip_bad=True, cache_dir=tmp_path / "cache")) == 4
    with pytest.raises(ColorizeError, match="broken.png"):  # the cache written by the skip run changes nothing
        load_folder(tmp_path / "imgs", 32, skip_bad=False, cache_dir=tmp_path / "cache")


def test_a_damaged_cache_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path / "imgs", 4)
    first = load_folder(tmp_path / "imgs", 32, False, tmp_path / "cache")
    [cache] = (tmp_path / "cache").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])  # cut short, as by a full disk or a killed copy
    assert np.array_equal(load_folder(tmp_path / "imgs", 32, False, tmp_path / "cache"), first)
    assert "cannot be read" in caplog.text
    assert np.array_equal(load_folder(tmp_path / "imgs", 32, False, tmp_path / "cache"), first)  # and written anew


def test_a_truncated_jpeg_is_unreadable(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 2)
    ok, encoded = cv2.imencode(".jpg", skimage.data.astronaut())
    whole = encoded.tobytes()
    (tmp_path / "imgs" / "whole.jpg").write_bytes(whole)
    (tmp_path / "imgs" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert read_rgb(tmp_path / "imgs" / "whole.jpg") is not None
    assert read_rgb(tmp_path / "imgs" / "cut.jpg") is None
    with pytest.raises(ColorizeError, match="cut.jpg"):
        load_folder(tmp_path / "imgs", 32, skip_bad=False, cache_dir=tmp_path / "cache")
    assert len(load_folder(tmp_path / "imgs", 32, skip_bad=True, cache_dir=tmp_path / "cache")) == 3


def test_cifar10_honours_image_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    thumbnails = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(data, "download_cifar10", lambda root, train: thumbnails)  # no network in tests
    source = data.Source("cifar10", str(tmp_path), 64, 0.2, 0, None, False, tmp_path / "cache")
    assert data.load_rgb(source).shape == (5, 64, 64, 3)
    images, _ = data.load_test(source, torch.device("cpu"))
    assert images.rgb.shape == (5, 3, 64, 64)


def test_sample_data_larger_than_its_photos_is_one_line() -> None:
    with pytest.raises(ColorizeError, match="^data.image_size=1024 is larger than the sample photos"):
        data.load_sample(1024)


def test_as_float_leaves_its_input_alone() -> None:
    from colorize.color import as_float

    pixels = torch.full((1, 1, 2, 2), 255.0)
    assert torch.equal(as_float(pixels), torch.ones(1, 1, 2, 2))
    assert torch.equal(pixels, torch.full((1, 1, 2, 2), 255.0))
    assert as_float(torch.full((1,), 255, dtype=torch.uint8)).dtype == torch.float32
