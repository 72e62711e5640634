"""The seed's ConvNet: a small conv encoder and a dense decoder to a full RGB image."""

import torch
from torch import nn


class ConvNet(nn.Module):
    def __init__(self, width: int = 1, image_size: int = 32, out_channels: int = 3) -> None:
        super().__init__()
        self.image_size = image_size
        self.out_channels = out_channels
        c1, c2, hidden = 16 * width, 32 * width, 512 * width  # width=1 is the seed exactly
        side = (image_size // 2 - 2) // 2  # pool, unpadded 3x3 conv, pool: 32 -> 16 -> 14 -> 7
        # No activation after the convs, as in the seed.
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3),
            nn.MaxPool2d(2),
        )
        self.decoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_channels * image_size * image_size),
        )  # the seed's final sigmoid is applied by the Colorizer, which owns the output range

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, out_channels, S, S), unbounded."""
        return self.decoder(self.encoder(gray)).view(gray.shape[0], self.out_channels, self.image_size, self.image_size)
