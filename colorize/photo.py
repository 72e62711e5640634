"""A photo as every colourising path takes it in and gives it out: the photo command, evaluate's photo
mode, the gallery and the model logged to MLflow, all through `colourise`: `prepare` checks the image
(uint8, gray or RGB, one or a batch), makes its pixels and the view the net sees (the photo shrunk,
averaging, until its shorter side is the trained size; for a fixed-size net, fitted whole into its
square); the model's Colorizer.colour_photo colours them; `finish` gives uint8 RGB back.

Only torch and numpy here, and nothing of colorize: the logged model ships this file as its code
(`import photo`), to run where colorize is not installed.
"""

from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

NATIVE = "native"  # the net on the photo itself; "trained": at the scale it was trained at


class Prepared(NamedTuple):
    pixels: torch.Tensor  # (N, 3, H, W) float RGB in [0, 1], a gray photo's gray in all three
    view: torch.Tensor  # (N, 3, h, w) float RGB in [0, 1]: what the net sees
    single: bool  # one image given, not a batch: finish gives one back


def images(given: object) -> tuple[torch.Tensor, bool]:
    """An image or a batch as (N, 3, H, W) uint8, and whether it was one image. Taken: integers 0-255
    (uint8, or the int64 a JSON request becomes) shaped (H, W) gray, (H, W, 3) RGB, (N, H, W) or
    (N, H, W, 3); refused with a short ValueError naming what is expected, never a dump of the array."""
    array = np.asarray(given)
    if array.dtype.kind not in "ui":
        raise ValueError(f"expected uint8 pixel values 0-255, got {array.dtype} values")
    if array.size == 0:
        raise ValueError(f"expected an image, got an empty array of shape {array.shape}")
    if array.ndim not in (2, 3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise ValueError(
            f"expected an image (H, W) or (H, W, 3), or a batch (N, H, W) or (N, H, W, 3), got shape {array.shape}"
        )
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"expected pixel values 0-255, got {array.min()} to {array.max()}")
    single = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)
    batch = array[None] if single else array
    if batch.shape[-1] != 3 or batch.ndim == 3:  # gray: the same in R, G and B
        batch = np.repeat(batch[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.uint8)).permute(0, 3, 1, 2), single


def view_size(height: int, width: int, size: int, fixed: bool) -> tuple[int, int]:
    """The photo's size in the net's view: its shorter side `size` (a fixed-size net: its longer side,
    so the whole photo fits its square), the aspect ratio kept."""
    scale = size / (max(height, width) if fixed else min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def prepare(given: object, size: int, fixed: bool, resolution: str, device: torch.device) -> Prepared:
    """The pixels and the view of an image or a batch (see `images`), on `device`. `size`: the trained
    size; `fixed`: the net takes only size x size; resolution: "trained", or "native" (fully
    convolutional nets only)."""
    batch, single = images(given)
    pixels = batch.to(device) / 255
    if resolution == NATIVE:
        return Prepared(pixels, pixels, single)
    # Area averaging, as the training images were shrunk (OpenCV's INTER_AREA; torch's area mode is
    # its exact form for whole ratios and close otherwise); a photo smaller than the view is enlarged.
    shape = view_size(*pixels.shape[-2:], size, fixed)
    shrinking = shape[0] <= pixels.shape[-2]
    view = (
        F.interpolate(pixels, size=shape, mode="area")
        if shrinking
        else F.interpolate(pixels, size=shape, mode="bilinear", align_corners=False)
    )
    return Prepared(pixels, view, single)


def colourise(
    given: object,
    colour_photo: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    size: int,
    fixed: bool,
    resolution: str,
    device: torch.device,
) -> np.ndarray:
    """uint8 RGB of an image or a batch (see `images`): `colour_photo` (a Colorizer's, or its exported
    program) colours the prepared pixels and view."""
    prepared = prepare(given, size, fixed, resolution, device)
    with torch.no_grad():
        return finish(colour_photo(prepared.pixels, prepared.view), prepared.single)


def finish(rgb: torch.Tensor, single: bool) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> uint8 (N, H, W, 3), or (H, W, 3) for one image given."""
    out = (rgb * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out[0] if single else out
