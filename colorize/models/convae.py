"""A fully convolutional encoder-decoder: pooled downsampling, learned (transposed-conv) upsampling."""

import torch
from torch import nn

from colorize.models.blocks import Encoder, block, crop


class ConvAE(nn.Module):
    def __init__(self, width: int = 32, depth: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(width, depth)
        channels = self.encoder.channels
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2), block(channels[i], channels[i])
            )
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, out_channels, H, W), any H and W."""
        h, w = gray.shape[-2:]
        x = self.encoder(gray)[-1]  # only the bottleneck: no skip connections
        for up in self.up:
            x = up(x)
        return crop(self.head(x), h, w)
