"""The one evaluation used by training, the evaluate command and sweeps."""

from typing import Callable

import torch
from torch import nn

from colorize.data import Images

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float().div_(255)  # uint8 -> [0, 1]


def psnr_db(mse: torch.Tensor) -> torch.Tensor:
    # Peak 1.0 for images in [0, 1]; a floor of 1e-10 caps a perfect match at 100 dB.
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def predict(model: nn.Module, gray: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """uint8 gray (N, 1, H, W) -> float RGB (N, 3, H, W) in [0, 1]."""
    model.eval()
    return torch.cat([model(as_float(gray[i : i + batch_size])) for i in range(0, len(gray), batch_size)])


@torch.no_grad()
def evaluate(model: nn.Module, images: Images, loss_fn: LossFn, batch_size: int = 1000) -> dict[str, float]:
    """Loss and PSNR over a whole split, in large no-grad batches; one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=images.rgb.device)
    per_image_mse = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        pred, target = model(as_float(batch.gray)), as_float(batch.rgb)
        loss_sum += loss_fn(pred, target) * len(batch)
        per_image_mse.append((pred - target).square().mean(dim=(1, 2, 3)))
    mse = torch.cat(per_image_mse)
    n = len(images)
    return {
        "loss": (loss_sum / n).item(),
        "psnr": psnr_db(mse.mean()).item(),  # pooled: 10 log10(1 / MSE over the whole split)
        "psnr_per_image": psnr_db(mse).mean().item(),
    }
