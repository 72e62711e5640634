"""The one evaluation used by training, the evaluate command and sweeps: every metric on RGB in [0, 1]."""

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from colorize import ab_prior
from colorize.color import as_float, lab_to_rgb, rgb_to_lab
from colorize.config import METRICS
from colorize.distributed import Ranks, gather, mean
from colorize.images import Batches, Images
from colorize.wrapper import Colorizer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Pixels per evaluation batch: 1,000 CIFAR-sized images, about 12 MB of float RGB. Bigger images
# come in fewer at a time, so a model's no-grad activations stay the same size at 32 or 256 px.
EVAL_BATCH_PIXELS = 1000 * 32 * 32
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004: Gaussian window, 11 x 11 pixels, sigma 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K * data range)^2, data range 1
# An image's mean colour counts as right when its mean (a, b) is within this many CIE Lab units of
# the truth's: about the difference between a neutral and a just plainly tinted gray.
MEAN_AB_CLOSE = 10.0
# The AuC of Zhang, Isola and Efros 2016 ("Colorful Image Colorization", Table 1): the share of
# pixels whose ab error (CIE Lab units) is within t, averaged over the thresholds t = 0, 1, ..., 150.
AUC_THRESHOLDS = 151
# Its rebalanced form weighs each pixel by how rare its true colour is, read from a FIXED table of
# ab colours in natural photos (colorize/ab_prior.py, counted by benchmarks/ab_prior.py over the
# 50,500 Tiny ImageNet train photos), never from the split being scored: the yardstick is then the
# same for every model, data set and baseline, so their figures compare. Weighted as Zhang et al.
# weigh their loss: the table's shares smoothed by a Gaussian of sigma 5 ab units, mixed half and
# half with a uniform share over the bins seen in it (263 of 22 x 22), inverted, and normalised to
# a mean of 1 over pixels distributed as the smoothed table: a near-gray pixel weighs 0.16, the
# rarest or an unseen colour 5.5 (finite, so one odd pixel cannot swamp a split).
PRIOR_SIGMA = 5.0  # ab units
PRIOR_MIX = 0.5  # the uniform share, their lambda


def rarity_weights(counts: torch.Tensor, sigma_bins: float, mix: float) -> torch.Tensor:
    """(B, B) pixel counts of ab bins -> (B, B) weights 1 / ((1 - mix) p + mix / Q): p the counts'
    shares smoothed by a Gaussian of `sigma_bins` bins, Q the number of bins with any count; scaled
    so that the sum of p times the weights is 1."""
    radius = max(1, round(3 * sigma_bins))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma_bins**2))
    kernel = kernel / kernel.sum()
    share = (counts / counts.sum()).double()[None, None]
    share = F.conv2d(
        F.conv2d(share, kernel.view(1, 1, -1, 1), padding=(radius, 0)), kernel.view(1, 1, 1, -1), padding=(0, radius)
    )[0, 0]
    share = share / share.sum()  # what the zero padding took off the edge bins
    weight = 1 / ((1 - mix) * share + mix / (counts > 0).sum())
    return (weight / (share * weight).sum()).float()


AB_RARITY = rarity_weights(torch.tensor(ab_prior.COUNTS), PRIOR_SIGMA / ab_prior.AB_STEP, PRIOR_MIX)


def rarity(ab: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) true ab -> (N, H, W): each pixel's weight, that of its bin in the fixed table."""
    bins = AB_RARITY.shape[0]
    index = ((ab + ab_prior.AB_EDGE) / ab_prior.AB_STEP).floor().clamp(0, bins - 1).long()
    return AB_RARITY.to(ab.device).flatten()[index[:, 0] * bins + index[:, 1]]


def thresholds_passed(pred_ab: torch.Tensor, truth_ab: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) ab twice -> (N, H, W): the share of the thresholds 0, 1, ..., 150 that each
    pixel's ab error is within. The mean over thresholds of the share of pixels within each is the
    mean over pixels of this share, so the AuC needs no pass per threshold."""
    error = torch.hypot(*(pred_ab - truth_ab).unbind(1))  # 40x faster on a CPU than norm over the channel dim
    return (AUC_THRESHOLDS - error.ceil()).clamp(0, AUC_THRESHOLDS) / AUC_THRESHOLDS


def psnr_db(mse: torch.Tensor) -> torch.Tensor:
    # Peak 1.0 for images in [0, 1]; a floor of 1e-10 caps a perfect match at 100 dB.
    return -10 * torch.log10(mse.clamp_min(1e-10))


def ssim(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of (N, C, H, W) in [0, 1]: each channel's map over the valid window positions,
    averaged. Images under 11 pixels a side get the largest odd window that fits."""
    size = min(SSIM_WINDOW, *[s - (s + 1) % 2 for s in pred.shape[-2:]])
    offsets = torch.arange(size, dtype=pred.dtype, device=pred.device) - size // 2
    g = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    channels = pred.shape[1]
    window = (g[:, None] * g[None, :]).expand(channels, 1, size, size)
    blur = lambda x: F.conv2d(x, window, groups=channels)  # noqa: E731
    mu_p, mu_t = blur(pred), blur(truth)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(truth * truth) - mu_t**2
    cov = blur(pred * truth) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_p**2 + mu_t**2 + SSIM_C1) * (var_p + var_t + SSIM_C2)
    )
    return ssim_map.mean(dim=(1, 2, 3))


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Per-image colourfulness of (N, 3, H, W) RGB in [0, 1] (Hasler & Suesstrunk 2003, on the
    0-255 scale they use): sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    r, g, b = (255 * rgb).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    spread = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    return spread + 0.3 * (rg.mean(dim=1).square() + yb.mean(dim=1).square()).sqrt()


class Scores:
    """Per-image figures gathered on the device over batches; `result` reads them back once."""

    def __init__(self) -> None:
        names = (
            "mse",
            "ssim",
            "colorfulness",
            "truth_colorfulness",
            "mean_ab_error",
            "pixels",
            "passed",
            "weighted_passed",
            "weight",
        )
        self.parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def add(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        self.parts["mse"].append((pred - truth).square().mean(dim=(1, 2, 3)))
        self.parts["ssim"].append(ssim(pred, truth))
        self.parts["colorfulness"].append(colorfulness(pred))
        self.parts["truth_colorfulness"].append(colorfulness(truth))
        pred_ab, truth_ab = rgb_to_lab(pred)[:, 1:], rgb_to_lab(truth)[:, 1:]
        self.parts["mean_ab_error"].append((pred_ab.mean(dim=(2, 3)) - truth_ab.mean(dim=(2, 3))).norm(dim=1))
        # Per image, the AuC's sums over its pixels: the split's figures pool every pixel.
        passed, weight = thresholds_passed(pred_ab, truth_ab), rarity(truth_ab)
        self.parts["pixels"].append(
            torch.full(passed.shape[:1], passed[0].numel(), dtype=passed.dtype, device=passed.device)
        )
        self.parts["passed"].append(passed.sum(dim=(1, 2)))
        self.parts["weighted_passed"].append((weight * passed).sum(dim=(1, 2)))
        self.parts["weight"].append(weight.sum(dim=(1, 2)))

    def per_image(self) -> dict[str, list[float]]:
        """Each image's figures, in the order they were added."""
        parts = {name: torch.cat(p) for name, p in self.parts.items()}
        pixels, passed, weighted_passed, weight = (
            parts.pop(name) for name in ("pixels", "passed", "weighted_passed", "weight")
        )
        return {
            "psnr": psnr_db(parts.pop("mse")).tolist(),
            **{name: p.tolist() for name, p in parts.items()},
            "auc": (100 * passed / pixels).tolist(),
            "auc_rebalanced": (100 * weighted_passed / weight).tolist(),
        }

    def result(self, ranks: Ranks = Ranks()) -> dict[str, float]:
        """With several processes (`ranks`), over every process's images: each scored its own share."""
        parts = (torch.cat(p) for p in self.parts.values())
        mse, ssim_, colorful, truth_colorful, mean_ab_error, pixels, passed, weighted_passed, weight = (
            gather(p) if ranks.world > 1 else p for p in parts
        )
        figures = torch.stack(
            [
                psnr_db(mse.mean()),  # pooled: 10 log10(1 / MSE over the whole split)
                psnr_db(mse).mean(),  # the mean of each image's PSNR, as colorization papers quote
                ssim_.mean(),
                colorful.mean(),
                colorful.mean() / truth_colorful.mean().clamp_min(1e-10),  # < 1: washed out
                # Per image, so too much colour on one image cannot make up for too little on another.
                (colorful - truth_colorful).abs().mean(),
                (mean_ab_error <= MEAN_AB_CLOSE).float().mean(),  # the share of images whose overall tint is right
                # Percent, as the papers quote it, over every pixel of the split (on a split, whose
                # images share one size, the raw AuC is also the mean of the images').
                100 * passed.sum() / pixels.sum(),
                100 * weighted_passed.sum() / weight.sum(),
            ]
        ).tolist()
        return dict(zip(METRICS, figures, strict=True))


def eval_batch_size(images: Batches) -> int:
    height, width = images.head(1).rgb.shape[-2:]
    return max(1, EVAL_BATCH_PIXELS // (height * width))


@torch.no_grad()
def predict(model: Colorizer, images: Images, batch_size: Optional[int] = None) -> torch.Tensor:
    """RGB predictions (N, 3, H, W) in [0, 1]."""
    model.eval()
    return torch.cat([model(model.inputs(batch)) for batch in images.batches(batch_size or eval_batch_size(images))])


@torch.no_grad()
def evaluate(
    model: Colorizer, images: Batches, loss_fn: LossFn, batch_size: Optional[int] = None, ranks: Ranks = Ranks()
) -> dict[str, float]:
    """Loss (in the model's target space) and image metrics (on RGB) over a whole split, in large
    no-grad batches; one host sync at the end. Several processes each score their share, and the
    figures are those of all the images."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, count = torch.zeros((), device=device), 0
    scores = Scores()
    for batch in images.batches(batch_size or eval_batch_size(images), ranks.shard(torch.arange(len(images)))):
        luminance = model.inputs(batch)
        prediction = model.predict(luminance)
        loss_sum += loss_fn(prediction, model.targets(batch)) * len(batch)
        count += len(batch)
        scores.add(model.to_rgb(luminance, prediction), as_float(batch.rgb))
    return {"loss": mean(loss_sum, count), **scores.result(ranks)}


@torch.no_grad()
def baselines(images: Batches, batch_size: Optional[int] = None) -> dict[str, float]:
    """What doing nothing scores on the same split: `gray_copy_*` (gray into R, G and B) and
    `lab_zero_ab_*` (the true L with a = b = 0)."""
    gray_copy, lab_zero_ab = Scores(), Scores()
    for batch in images.batches(batch_size or eval_batch_size(images)):
        truth = as_float(batch.rgb)
        gray_copy.add(as_float(batch.gray).expand(-1, 3, -1, -1), truth)
        neutral = batch.lab.clone() if batch.lab is not None else rgb_to_lab(truth)
        neutral[:, 1:] = 0
        lab_zero_ab.add(lab_to_rgb(neutral), truth)
    return {
        **{f"gray_copy_{k}": v for k, v in gray_copy.result().items()},
        **{f"lab_zero_ab_{k}": v for k, v in lab_zero_ab.result().items()},
    }
