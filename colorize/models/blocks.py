"""Layers shared by the fully convolutional families."""

import torch
import torch.nn.functional as F
from torch import nn


def block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers: one level of an encoder or decoder."""
    # No conv bias: the batch norm right after it has its own.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom and right up to a multiple, repeating the edge pixels."""
    h, w = x.shape[-2:]
    if h % multiple == 0 and w % multiple == 0:
        return x
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")
