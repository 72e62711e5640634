"""Figures for tracking: the seed's loss curves and input / prediction / actual grids."""

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def loss_curve(train_loss: list[float], val_loss: list[float]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(train_loss) + 1)
    ax.plot(epochs, train_loss, label="train")
    ax.plot(epochs, val_loss, label="val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    return fig


def sample_grid(gray: torch.Tensor, prediction: torch.Tensor, actual: torch.Tensor, title: str) -> Figure:
    """Rows: gray input, prediction, actual; all float in [0, 1], (N, C, H, W)."""
    rows = {"input": gray.expand(-1, 3, -1, -1), "prediction": prediction, "actual": actual}
    n = gray.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(1.2 * n, 3.9), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        pixels = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        for c in range(n):
            axes[r, c].imshow(pixels[c], interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
