"""Layers shared by the fully convolutional families: the conv block and the encoder both use."""

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
    """Pad H and W at the bottom and right up to a multiple, repeating the edge pixels (by nothing when
    they are one already: no branch on the size, so an exported net takes any size)."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left height x width of (N, C, H, W), picked by index rather than sliced: a slice (or
    narrow) is a no-op when it keeps the whole size, a branch torch.export would fix at its example's
    size, so the exported net of the logged model would then refuse photos of other sizes."""
    rows, cols = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


class Encoder(nn.Module):
    """A stem block at full resolution, then `depth` levels of 2x max-pool and a block, each level
    with twice the channels of the one above."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.channels = [width * 2**level for level in range(depth + 1)]
        self.stem = block(1, self.channels[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), block(self.channels[i], self.channels[i + 1])) for i in range(depth)
        )

    def forward(self, gray: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, H, W) -> each level's features, full resolution first, the bottleneck last; H and W
        are padded up to a multiple of 2^depth (the decoder crops back)."""
        features = [self.stem(pad_to_multiple(gray, 2**self.depth))]
        for down in self.down:
            features.append(down(features[-1]))
        return features
