"""A fully convolutional encoder-decoder: pooled downsampling, learned (transposed-conv) upsampling."""

import torch
from torch import nn

from colorize.models.blocks import block, pad_to_multiple


class ConvAE(nn.Module):
    def __init__(self, width: int = 32, depth: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.depth = depth
        channels = [width * 2**level for level in range(depth + 1)]  # doubled at each level down
        self.stem = block(1, channels[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), block(channels[i], channels[i + 1])) for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2), block(channels[i], channels[i]))
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, out_channels, H, W), any H and W."""
        h, w = gray.shape[-2:]
        x = self.stem(pad_to_multiple(gray, 2**self.depth))
        for down in self.down:
            x = down(x)
        for up in self.up:
            x = up(x)
        return self.head(x)[..., :h, :w]
