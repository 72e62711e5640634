"""U-Net: the encoder-decoder with each encoder level's features joined to its decoder level, so
edges found at full resolution reach the output instead of being rebuilt from the bottleneck."""

import torch
from torch import nn

from colorize.models.blocks import Encoder, block, crop


class UNet(nn.Module):
    def __init__(self, width: int = 32, depth: int = 3, out_channels: int = 3, out_level: int = 0) -> None:
        super().__init__()
        self.encoder = Encoder(width, depth)
        self.out_level = out_level  # the output is at 1 / 2^out_level of the input's size (the Colorizer upsamples)
        channels = self.encoder.channels
        levels = list(reversed(range(out_level, depth)))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2) for i in levels)
        self.merge = nn.ModuleList(block(2 * channels[i], channels[i]) for i in levels)  # upsampled + skip
        self.head = nn.Conv2d(channels[out_level], out_channels, 1)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, out_channels, H / s, W / s) rounded up, s = 2^out_level; any H and W."""
        scale = 2**self.out_level
        h, w = -(-gray.shape[-2] // scale), -(-gray.shape[-1] // scale)
        *skips, x = self.encoder(gray)
        for upsample, merge in zip(self.upsample, self.merge):
            x = merge(torch.cat([upsample(x), skips.pop()], 1))
        return crop(self.head(x), h, w)
