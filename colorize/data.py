"""Data sets as uint8 tensors: decoded and converted once, cached, split by a seeded permutation."""

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import cv2
import numpy as np
import torch

from colorize import atomic
from colorize.color import as_float, gray, rgb_to_lab
from colorize.errors import ColorizeError, one_line

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
JPEG_END = b"\xff\xd9"  # the end-of-image marker every complete JPEG has
JPEG_TAIL = 1024  # bytes at the end searched for it: some cameras append data after the marker
# CC0 / public-domain photos bundled with scikit-image (licences in the README).
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SAMPLE_SCALES = (1, 1.5, 2, 3, 4)  # downscale factors: the same photos at several zoom levels


@dataclass
class Images:
    """One data set on one device: gray and RGB as uint8 (floats made per batch), Lab made once."""

    gray: torch.Tensor  # (N, 1, H, W) uint8, OpenCV's gray: the input of rgb-target models
    rgb: torch.Tensor  # (N, 3, H, W) uint8, the ground truth
    # (N, 3, H, W) float32 CIE Lab of rgb: L is the input of lab-target models; None for rgb-target
    # runs, which never read it.
    lab: Optional[torch.Tensor]

    def __len__(self) -> int:
        return self.gray.shape[0]

    def __getitem__(self, index: torch.Tensor | slice) -> "Images":
        return Images(self.gray[index], self.rgb[index], None if self.lab is None else self.lab[index])

    def crop(self, top: int, left: int, size: int) -> "Images":
        window = (..., slice(top, top + size), slice(left, left + size))
        return Images(self.gray[window], self.rgb[window], None if self.lab is None else self.lab[window])

    def to(self, device: torch.device) -> "Images":
        return Images(self.gray.to(device), self.rgb.to(device), None if self.lab is None else self.lab.to(device))

    def batches(self, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator["Images"]:
        """Batches of the images at `order` (indices on this set's device), or all in stored order."""
        order = torch.arange(len(self)) if order is None else order
        order = order.to(self.gray.device)
        return (self[order[i : i + batch_size]] for i in range(0, len(order), batch_size))

    def head(self, n: int) -> "Images":
        return self[:n]


class Cropped:
    """Training images, each batch flipped left-right at random per image on the device, and cut to
    `size` at a random place where they are held larger (data.augment)."""

    def __init__(self, images: Images, size: int, generator: torch.Generator) -> None:
        self.images, self.size, self.generator = images, size, generator

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator[Images]:
        for batch in self.images.batches(batch_size, order):
            yield crop_flip(batch, self.size, self.generator)

    def head(self, n: int) -> Images:
        margin = (self.images.rgb.shape[-1] - self.size) // 2
        return self.images[:n].crop(margin, margin, self.size)


def crop_flip(batch: Images, size: int, generator: torch.Generator) -> Images:
    """Each image's own random size x size window, mirrored for about half of them."""
    n, side, device = len(batch), batch.rgb.shape[-1], batch.rgb.device
    top, left = torch.randint(0, side - size + 1, (2, n), generator=generator, device=generator.device).to(device)
    flip = torch.rand(n, generator=generator, device=generator.device).to(device) < 0.5
    steps = torch.arange(size, device=device)
    rows = (top[:, None] + steps)[:, None, :, None]  # (N, 1, S, 1)
    cols = left[:, None] + steps
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (N, 1, 1, S)

    def pick(x: torch.Tensor) -> torch.Tensor:
        images, channels = torch.arange(n, device=device), torch.arange(x.shape[1], device=device)
        return x[images[:, None, None, None], channels[None, :, None, None], rows, cols]

    return Images(pick(batch.gray), pick(batch.rgb), None if batch.lab is None else pick(batch.lab))


class Batches(Protocol):
    """A data set the loop and the metrics can walk: held on the device (Images, Cropped) or
    decoded from files as it goes (colorize.stream.Stream)."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator[Images]: ...

    def head(self, n: int) -> Images: ...


@dataclass
class Split:
    train: Batches
    val: Batches


def from_rgb(
    rgb: np.ndarray, device: torch.device = torch.device("cpu"), with_lab: bool = True, batch_size: int = 5000
) -> Images:
    """(N, H, W, 3) uint8 RGB -> Images on `device`; gray (and Lab) made once for the whole set."""
    pixels = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).contiguous()
    # In chunks on the device: the int and float intermediates of the whole set at once would be 4-10x its size.
    chunks = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    lab = torch.cat([rgb_to_lab(as_float(chunk)) for chunk in chunks]) if with_lab else None
    return Images(gray=torch.cat([gray(chunk) for chunk in chunks]), rgb=pixels, lab=lab)


def split_indices(
    n: int, val_fraction: float, seed: int, limit: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded, disjoint train and val indices; `limit` first draws a seeded subset of that size."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n = min(limit or n, n)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ColorizeError(f"only {n} images: too few to split with data.val_fraction={val_fraction}")
    return order[n_val:n], order[:n_val]


def split(images: Images, val_fraction: float, seed: int, limit: Optional[int] = None) -> Split:
    train, val = split_indices(len(images), val_fraction, seed, limit)
    return Split(train=images[train], val=images[val])


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


def load_sample(image_size: int) -> np.ndarray:
    """Patches of scikit-image's bundled photos, cut on a fixed grid at a few scales."""
    import skimage.data

    patches = []
    for name in SAMPLE_PHOTOS:
        photo = getattr(skimage.data, name)()
        for factor in SAMPLE_SCALES:
            h, w = int(photo.shape[0] / factor), int(photo.shape[1] / factor)
            scaled = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
            stride = image_size // 2  # half-overlapping patches
            for top in range(0, h - image_size + 1, stride):
                for left in range(0, w - image_size + 1, stride):
                    patches.append(scaled[top : top + image_size, left : left + image_size])
    if not patches:
        largest = min(min(getattr(skimage.data, name)().shape[:2]) for name in SAMPLE_PHOTOS)
        raise ColorizeError(
            f"data.image_size={image_size} is larger than the sample photos ({largest} px at most): use data=folder for bigger images"
        )
    return np.stack(patches)


def load_cifar10(root: Path, train: bool, image_size: int) -> np.ndarray:
    """CIFAR-10 at `image_size` pixels (resized from its 32, as data=folder resizes its images)."""
    try:
        rgb = download_cifar10(root, train)
    except Exception as error:  # offline: URLError, socket or SSL errors, a failed checksum
        raise ColorizeError(
            f"cannot get CIFAR-10 into data.root={root} ({type(error).__name__}); offline? use data=sample, or data=folder data.root=<folder of images>"
        ) from None
    return rgb if image_size == rgb.shape[1] else np.stack([resize_center_crop(image, image_size) for image in rgb])


def download_cifar10(root: Path, train: bool) -> np.ndarray:
    from torchvision.datasets import CIFAR10

    return CIFAR10(str(root), train=train, download=True).data


@dataclass(frozen=True)
class Source:
    """Which images, and how they are cut and split: the `data` config as typed values."""

    kind: str  # sample, cifar10 or folder
    root: Optional[str]
    image_size: int
    val_fraction: float
    seed: int
    limit: Optional[int]
    skip_bad: bool
    cache_dir: Path
    augment: str = "none"  # none, flip or crop (colorize.config.Augment)
    in_memory: str = "auto"
    workers: Optional[int] = None
    extra: tuple[str, ...] = ()  # folders whose images join the train part only

    @classmethod
    def from_config(cls, data: Any, cache_dir: str) -> "Source":
        """From a composed `data` config node (colorize.config.DataConfig)."""
        return cls(
            kind=data.source.value,
            root=data.root,
            image_size=data.image_size,
            val_fraction=data.val_fraction,
            seed=data.seed,
            limit=data.limit,
            skip_bad=data.on_bad_image.value == "skip",
            cache_dir=Path(cache_dir),
            augment=data.augment.value,
            in_memory=str(data.in_memory).lower(),
            workers=data.workers,
            extra=tuple(data.extra),
        )


def load_rgb(spec: Source) -> np.ndarray:
    if spec.kind == "sample":
        return load_sample(spec.image_size)
    if spec.kind == "cifar10":
        return load_cifar10(Path(spec.root), train=True, image_size=spec.image_size)
    return load_folder(Path(spec.root), spec.image_size, spec.skip_bad, spec.cache_dir)


def load_size(spec: Source) -> int:
    """The size images are decoded at: larger than image_size when training cuts random crops."""
    return spec.image_size + spec.image_size // 8 if spec.augment == "crop" else spec.image_size


def load_split(
    spec: Source, device: torch.device, with_lab: bool = True, generator: Optional[torch.Generator] = None
) -> Split:
    """The train and val parts, with Lab only for lab-target models (`with_lab`): the rest never
    read it, and it is the costliest conversion, at 4x the bytes. With data.augment, `generator`
    draws the crops and flips of the training batches."""
    size = load_size(spec)
    rgb = load_rgb(replace(spec, image_size=size))
    # Split the uint8 array first: only the images in use get gray and Lab, and no second copy of
    # the converted set is ever held.
    train, val = split_indices(len(rgb), spec.val_fraction, spec.seed, spec.limit)
    train_rgb = np.concatenate(
        [
            rgb[train.numpy()],
            *(load_folder(Path(root), size, spec.skip_bad, spec.cache_dir, "data.extra") for root in spec.extra),
        ]
    )
    train_images, val_images = from_rgb(train_rgb, device, with_lab), from_rgb(rgb[val.numpy()], device, with_lab)
    if spec.augment == "none":
        return Split(train=train_images, val=val_images)
    margin = (size - spec.image_size) // 2
    generator = generator or torch.Generator(device=device).manual_seed(spec.seed)
    return Split(
        train=Cropped(train_images, spec.image_size, generator), val=val_images.crop(margin, margin, spec.image_size)
    )


def load_test(spec: Source, device: torch.device) -> tuple[Images, str]:
    """The official test split where the data has one, else the held-out split; and its name."""
    root = Path(spec.root) if spec.root else None
    if spec.kind == "cifar10":
        images, name = (
            from_rgb(load_cifar10(root, train=False, image_size=spec.image_size), device),
            "CIFAR-10 test set",
        )
    elif spec.kind == "folder" and root.name == "train" and (root.parent / "test").is_dir():
        test = root.parent / "test"
        images, name = (
            from_rgb(load_folder(test, spec.image_size, spec.skip_bad, spec.cache_dir), device),
            f"test folder {test}",
        )
    else:
        rgb = load_rgb(spec)
        _, val = split_indices(len(rgb), spec.val_fraction, spec.seed, spec.limit)  # the train part is never converted
        name = f"held-out split of data={spec.kind} (data.val_fraction={spec.val_fraction}, data.seed={spec.seed})"
        return from_rgb(rgb[val.numpy()], device), name
    if spec.limit:  # a seeded subset, so a class-sorted folder still gives every class
        images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(spec.seed))[: spec.limit]]
    return images, name
