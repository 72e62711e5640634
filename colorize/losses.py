"""Losses of our own (the rest are torch.nn's; the bins loss lives with the bins in colorize.bins), and
the losses a checkpoint may name."""

import torch
from torch import nn

from colorize.bins import RebalancedCrossEntropy


class LogMSE(nn.Module):
    """The mean over images of log10 of each image's MSE: -1/10 of the mean per-image PSNR, the
    figure colorization papers quote. Plain MSE weighs each image by its error, so it will add a
    little wrong colour to many near-gray images to fix one colourful image; on a log scale a near-gray
    image's small error counts as much as a colourful image's large one."""

    def __init__(self, floor: float = 1e-4) -> None:
        super().__init__()
        self.floor = floor  # MSE below this (PSNR above 40 dB) stops counting: no image is chased to perfection

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_image = (prediction - target).square().flatten(1).mean(dim=1)
        return torch.log10(per_image + self.floor).mean()


# By the `_target_` of conf/loss/*.yaml (colorize.checkpoint.rebuild).
LOSSES: dict[str, type[nn.Module]] = {
    "torch.nn.MSELoss": nn.MSELoss,
    "torch.nn.L1Loss": nn.L1Loss,
    "torch.nn.SmoothL1Loss": nn.SmoothL1Loss,
    "colorize.losses.LogMSE": LogMSE,
    "colorize.bins.RebalancedCrossEntropy": RebalancedCrossEntropy,
}
