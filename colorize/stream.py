"""The streaming data path, for folders too big to hold decoded: DataLoader worker processes decode,
resize and crop each batch's files, which reach the device as the in-memory path's Images."""

import ctypes
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from colorize.color import as_float, gray, rgb_to_lab
from colorize.data import Source, load_size, split_indices
from colorize.device import free_memory
from colorize.errors import ColorizeError
from colorize.folders import list_images, read_rgb, resize_center_crop
from colorize.images import Cropped, Images, Split

log = logging.getLogger(__name__)

PREFETCH_BATCHES = 4  # per worker: enough to hide a slow decode behind the training step
DATA_SHARE = 0.5  # of free memory the decoded data may take before data.in_memory=auto streams it
BYTES_PER_PIXEL = 3 + 1  # uint8 RGB and gray
LAB_BYTES_PER_PIXEL = 3 * 4  # float32 Lab, for lab-target models
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


class Files(Dataset):
    """One image file per item, as an (H, W, 3) uint8 RGB array resized and centre-cropped to
    `load_size`, or its path when it cannot be read (the main process decides, by
    data.on_bad_image). Crops and flips to data.image_size are Cropped's, on the device, as
    for images held in memory."""

    def __init__(self, files: list[str], load_size: int) -> None:
        self.files, self.load_size = files, load_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray | str:
        rgb = read_rgb(self.files[index])
        if rgb is None:
            return self.files[index]
        return np.ascontiguousarray(resize_center_crop(rgb, self.load_size))


def collate(items: list[np.ndarray | str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    good = [item for item in items if not isinstance(item, str)]
    bad = [item for item in items if isinstance(item, str)]
    if not good:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, 1, 0, 0, dtype=torch.uint8), bad
    rgb = torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).contiguous()
    return rgb, gray(rgb), bad


class Order(Sampler[int]):
    """The indices of the coming pass, set before it starts (the main process iterates the sampler)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class Stream:
    """A folder's images decoded batch by batch; `order` gives the batches exactly as it does for
    Images, so the same seeded permutation gives the same batches on either path."""

    def __init__(
        self, dataset: Files, skip_bad: bool, device: torch.device, with_lab: bool, workers: Optional[int]
    ) -> None:
        self.dataset, self.skip_bad = dataset, skip_bad
        self.device, self.with_lab = device, with_lab
        self.loaders: dict[int, tuple[Order, DataLoader]] = {}
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers

    @property
    def files(self) -> list[str]:
        return self.dataset.files

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator[Images]:
        if batch_size not in self.loaders:
            # One DataLoader per batch size, its worker processes kept between passes (starting them
            # costs seconds); each pass sets the order its sampler hands out.
            sampler = Order()
            loader = DataLoader(
                self.dataset,
                batch_size=batch_size,
                sampler=sampler,
                num_workers=self.workers,
                collate_fn=collate,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=PREFETCH_BATCHES if self.workers else None,
                persistent_workers=self.workers > 0,
            )
            self.loaders[batch_size] = (sampler, loader)
        sampler, loader = self.loaders[batch_size]
        sampler.indices = list(range(len(self))) if order is None else order.cpu().tolist()
        for rgb, shade, bad in loader:
            for path in bad:
                if not self.skip_bad:
                    raise ColorizeError(f"cannot read image {path} (set data.on_bad_image=skip to skip such files)")
                log.warning("skipped unreadable image %s", path)
            if len(rgb):
                yield self.to_images(rgb, shade)

    def head(self, n: int) -> Images:
        items = [item for item in (self.dataset[i] for i in range(min(n, len(self)))) if not isinstance(item, str)]
        rgb, shade, _ = collate(items)
        return self.to_images(rgb, shade)

    def to_images(self, rgb: torch.Tensor, shade: torch.Tensor) -> Images:
        rgb, shade = rgb.to(self.device, non_blocking=True), shade.to(self.device, non_blocking=True)
        return Images(shade, rgb, rgb_to_lab(as_float(rgb)) if self.with_lab else None)


def wanted(spec: Source, device: torch.device, with_lab: bool) -> bool:
    """data.in_memory: true, false, or auto, which streams a folder whose decoded images would take
    more than DATA_SHARE of the memory free on the device (and on the host, where they are decoded)."""
    if spec.in_memory == "true":
        return False
    if spec.kind != "folder":
        if spec.in_memory == "false":
            raise ColorizeError(f"data.in_memory=false streams image files: it needs data=folder, not data={spec.kind}")
        return False
    if spec.in_memory == "false":
        return True
    count = len(list_images(Path(spec.root))) + sum(len(list_images(Path(root), "data.extra")) for root in spec.extra)
    need = count * load_size(spec) ** 2 * (BYTES_PER_PIXEL + (LAB_BYTES_PER_PIXEL if with_lab else 0))
    free = [memory for memory in (free_memory(device), free_memory(torch.device("cpu"))) if memory is not None]
    streams = bool(free) and need > DATA_SHARE * min(free)
    log.info(
        "data.in_memory=auto: %d images take %.1f GiB decoded, %.1f GiB free: %s",
        count,
        need / 2**30,
        min(free, default=0) / 2**30,
        "streaming them from disk" if streams else "held in memory",
    )
    return streams


def return_freed_memory() -> None:
    """Keep glibc handing blocks of 1 MiB and more back to the system when they are freed. By default
    it raises that threshold to the largest block freed so far; then each streamed batch's float
    tensors come from the heap, which cannot shrink past the small tensors kept after them, and peak
    memory grew with the number of batches (measured: 1.4 GiB at 30,000 images, 3.0 at 300,000)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to set
        pass


def load_split(
    spec: Source, device: torch.device, with_lab: bool, generator: Optional[torch.Generator] = None
) -> Split:
    """The same seeded split as data.load_split, over the folder's files (the same images when every
    file can be read; an unreadable one is found, and skipped or refused, when its batch comes), cut
    by the same Cropped: with the same `generator`, the same crops and flips."""
    return_freed_memory()
    files = list_images(Path(spec.root))
    train, val = split_indices(len(files), spec.val_fraction, spec.seed, spec.limit)
    extra = [file for root in spec.extra for file in list_images(Path(root), "data.extra")]

    def part(chosen: list[str]) -> Stream:
        return Stream(Files(chosen, load_size(spec)), spec.skip_bad, device, with_lab, spec.workers)

    train_part, val_part = part([files[i] for i in train.tolist()] + extra), part([files[i] for i in val.tolist()])
    if spec.augment == "none":
        return Split(train=train_part, val=val_part)
    generator = generator or torch.Generator(device=device).manual_seed(spec.seed)
    return Split(train=Cropped(train_part, spec.image_size, generator), val=Cropped(val_part, spec.image_size, None))
