"""Images held as tensors and walked in batches: the containers both data paths hand the loop and the
metrics (in memory and streamed), and the one crop and flip of data.augment."""

from dataclasses import dataclass
from typing import Iterator, Optional, Protocol

import numpy as np
import torch

from colorize.color import as_float, gray, rgb_to_lab


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
    """Images held at data.load_size, in memory or streamed, cut to `size` batch by batch on the
    device: the one crop and flip of both paths. With a generator (the training part under
    data.augment), each image is flipped left-right at random and cut at a random place; without
    one (the val part), cut in the middle."""

    def __init__(self, images: "Batches", size: int, generator: Optional[torch.Generator]) -> None:
        self.images, self.size, self.generator = images, size, generator

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator[Images]:
        for batch in self.images.batches(batch_size, order):
            yield self.cut(batch)

    def cut(self, batch: Images) -> Images:
        if self.generator is None:
            margin = (batch.rgb.shape[-1] - self.size) // 2
            return batch.crop(margin, margin, self.size)
        return crop_flip(batch, self.size, self.generator)

    def head(self, n: int) -> Images:
        first = self.images.head(n)  # decoded once: a Stream reads its files for it
        margin = (first.rgb.shape[-1] - self.size) // 2
        return first.crop(margin, margin, self.size)


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
