"""Data sets: where the images come from (the embedded sample, CIFAR-10, folders) and the seeded
split into train and val, decoded and converted once (colorize.folders caches a folder)."""

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import torch

from colorize.errors import ColorizeError
from colorize.folders import load_folder, resize_center_crop
from colorize.images import Cropped, Images, Split, from_rgb

log = logging.getLogger(__name__)

# CC0 / public-domain photos bundled with scikit-image (licences in the README).
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SAMPLE_SCALES = (1, 1.5, 2, 3, 4)  # downscale factors: the same photos at several zoom levels


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
