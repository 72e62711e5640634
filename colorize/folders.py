"""Image folders: listing, decoding (truncated and oversized files found, not trusted), resizing,
and the cache that decodes a folder once."""

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from colorize import atomic
from colorize.errors import ColorizeError, one_line

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
JPEG_END = b"\xff\xd9"  # the end-of-image marker every complete JPEG has
JPEG_TAIL = 1024  # bytes at the end searched for it: some cameras append data after the marker


def resize_center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    # INTER_AREA averages when shrinking (no aliasing); it falls back to bilinear when enlarging.
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top : top + size, left : left + size]


def read_rgb(path: str | Path) -> Optional[np.ndarray]:
    """Decode one image file to uint8 RGB, or None when it cannot be read, truncated JPEGs included:
    libjpeg decodes those with a warning on stderr and grey rows where the data stopped."""
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if str(path).lower().endswith((".jpg", ".jpeg")) and JPEG_END not in encoded[-JPEG_TAIL:].tobytes():
        return None
    try:
        bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if len(encoded) else None
    except cv2.error:  # a header beyond OpenCV's pixel limit (CV_IO_MAX_IMAGE_PIXELS), among others
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def list_images(root: Path, key: str = "data.root") -> list[str]:
    # os.walk and plain strings, not Path.rglob: every warm start lists the folder (30,000 files for
    # CIFAR-10), and Path objects made it several times slower.
    files = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ColorizeError(f"{key}={root} holds no .jpg/.jpeg/.png images")
    return files


def _cache_key(root: Path, files: list[str], image_size: int) -> str:
    # Names, sizes and modification times: a changed, added or removed file invalidates the cache.
    digest = hashlib.sha1(f"{root.resolve()}|{image_size}".encode())
    prefix = len(str(root))
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path[prefix:]}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_folder(root: Path, image_size: int, skip_bad: bool, cache_dir: Path, key: str = "data.root") -> np.ndarray:
    """Every jpg/png under `root` (recursively), resized and centre-cropped, as (N, S, S, 3) uint8;
    `key` names the setting that gave `root` in errors."""
    files = list_images(root, key)
    cache = cache_dir / f"folder-{_cache_key(root, files, image_size)}.npz"
    cached = _read_cache(cache)
    if cached is not None:
        rgb, bad = cached
        log.info("loaded %d images of %s from cache %s", len(rgb), root, cache)
    else:
        # cv2 releases the GIL while decoding, so threads use every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            decoded = list(pool.map(read_rgb, files, chunksize=256))
        bad = np.array([str(f) for f, im in zip(files, decoded) if im is None])
        good = [resize_center_crop(im, image_size) for im in decoded if im is not None]
        if not good:
            raise ColorizeError(f"{key}={root}: none of its {len(files)} images could be read")
        rgb = np.stack(good)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as file:  # a file, not a name: np.savez would add .npz to the name
                np.savez(file, rgb=rgb, bad=bad)

        atomic.write(cache, save)
    if len(bad) and not skip_bad:  # the cache holds the good images and names the bad, for either setting
        raise ColorizeError(f"cannot read image {bad[0]} (set data.on_bad_image=skip to skip such files)")
    if len(bad):
        log.warning("skipped %d unreadable images under %s (first: %s)", len(bad), root, bad[0])
    return rgb


def _read_cache(cache: Path) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The cached (rgb, bad) arrays, or None when there is no cache or it cannot be read (a disk
    fault, a copy cut short): a cache is only ever a shortcut, so a broken one is rebuilt."""
    if not cache.exists():
        return None
    try:
        with np.load(cache) as cached:
            return cached["rgb"], cached["bad"]
    except Exception as error:  # BadZipFile, EOFError, a missing array, a zlib error...
        log.warning("cache %s cannot be read (%s): decoding the images again", cache, one_line(error))
        return None
