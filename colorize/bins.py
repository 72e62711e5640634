"""Colour as classification (Zhang, Isola and Efros 2016, "Colorful Image Colorization"): the net
scores each pixel's chroma over a grid of Cb, Cr bins, is trained with a class-rebalanced cross
entropy, and is read out as the annealed mean. A regression loss averages the plausible colours of
an object (a red or a blue car) to gray; the annealed mean picks a colour from the peak instead."""

import torch
import torch.nn.functional as F
from torch import nn

CHROMA_RANGE = 0.5  # Cb and Cr of RGB in [0, 1] span [-0.5, 0.5] (colorize.color.CB, CR)


def centres(bins: int, device: torch.device) -> torch.Tensor:
    """(bins^2, 2) Cb, Cr of every bin's centre; index = cb_bin * bins + cr_bin."""
    step = 2 * CHROMA_RANGE / bins
    axis = -CHROMA_RANGE + step * (torch.arange(bins, device=device) + 0.5)
    cb, cr = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([cb.flatten(), cr.flatten()], 1)


def read_out(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N, bins^2, H, W) scores -> (N, 2, H, W) Cb, Cr: the mean of the distribution sharpened by
    `temperature` (1: the mean, as a regression would give; towards 0: the most likely bin). Zhang
    et al. chose 0.38 for vivid colour with few artefacts."""
    bins = round(logits.shape[1] ** 0.5)
    weights = torch.softmax(logits / temperature, dim=1)
    return torch.einsum("nqhw,qc->nchw", weights, centres(bins, logits.device))


def soft_targets(chroma: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, 2, H, W) Cb, Cr -> (N, bins^2, H, W): each pixel's chroma shared bilinearly between the
    four bin centres around it (Zhang et al. use a Gaussian over 5 neighbours: the same idea)."""
    step = 2 * CHROMA_RANGE / bins
    position = ((chroma + CHROMA_RANGE) / step - 0.5).clamp(0, bins - 1)  # in units of bins, 0 = first centre
    low = position.floor().clamp(max=bins - 2)
    frac = position - low
    low = low.long()
    n, _, h, w = chroma.shape
    target = torch.zeros(n, bins * bins, h, w, device=chroma.device, dtype=chroma.dtype)
    for d_cb in (0, 1):
        for d_cr in (0, 1):
            weight = (frac[:, :1] if d_cb else 1 - frac[:, :1]) * (frac[:, 1:] if d_cr else 1 - frac[:, 1:])
            index = (low[:, :1] + d_cb) * bins + (low[:, 1:] + d_cr)
            target.scatter_add_(1, index, weight)
    return target


class RebalancedCrossEntropy(nn.Module):
    """Cross entropy of the scores against the soft targets, each pixel weighted by how rare its
    colour is: weights (1 - mix) * p + mix / Q, Q the number of bins seen, inverted and normalised
    to a mean of 1 over the colours seen. p is the share of each bin over all training pixels so
    far, counted as training goes (so no pass over the data is needed first; the first batches weigh
    by a rougher p: on Tiny ImageNet the weights are within 8% after 20 batches of 50, 2% after 100).
    With mix=1 every colour weighs the same (plain cross entropy)."""

    def __init__(self, mix: float = 0.5) -> None:
        super().__init__()
        self.mix = mix
        self.counts: torch.Tensor | None = None  # per bin, over the training pixels seen

    def forward(self, logits: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
        bins = round(logits.shape[1] ** 0.5)
        target = soft_targets(chroma, bins)
        if torch.is_grad_enabled():  # training steps count; evaluation (no grad) leaves p alone
            seen = target.detach().sum(dim=(0, 2, 3))
            self.counts = seen if self.counts is None else self.counts + seen
        counts = self.counts if self.counts is not None else target.sum(dim=(0, 2, 3))
        share = counts / counts.sum()
        # The uniform share is over the colours seen, as Zhang et al.'s is over the in-gamut bins. Over
        # all bins^2, many never seen (CIFAR-10 fills 144 of 16 x 16, Tiny ImageNet 188), it shrank as
        # model.bins grew, and rare colours weighed up to 1.8 times more than loss.mix says.
        weight = 1 / ((1 - self.mix) * share + self.mix / (share > 0).sum())
        weight = weight / (share * weight).sum()
        pixel_weight = weight[target.argmax(dim=1)]  # the weight of each pixel's nearest bin
        cross_entropy = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
        return (pixel_weight * cross_entropy).mean()
