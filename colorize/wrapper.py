"""The model users see: luminance in, RGB in [0, 1] out. It owns the colour space the net predicts
in (its input, its loss-space target, and the way back to RGB), so the loop and metrics need not."""

from typing import Any, Callable, Mapping, Optional

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from colorize import bins
from colorize.color import AB_SCALE, GRAY_WEIGHTS, L_SCALE, add_chroma, as_float, cbcr_to_rgb, lab_to_rgb_keeping_l, rgb_to_cbcr
from colorize.config import Target
from colorize.data import Images


class Colorizer(nn.Module):
    def __init__(self, net: nn.Module, target: Target, bins: int = 0, temperature: float = 1.0, saturation: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.target = target
        self.bins, self.temperature = bins, temperature  # bins > 0: the net scores chroma bins (colorize.bins)
        self.saturation = saturation  # the predicted colour is multiplied by this when read out (lab, ycbcr)
        self.scale = 2 ** getattr(net, "out_level", 0)  # the net's output is this many times smaller than its input
        self.lab = target == Target.lab
        self.fixed_size: Optional[int] = getattr(net, "image_size", None)  # None: fully convolutional

    def inputs(self, images: Images) -> torch.Tensor:
        """The net's input, (N, 1, H, W) in [0, 1]: L / 100 (lab) or OpenCV's gray / 255 (rgb)."""
        return images.lab[:, :1] / L_SCALE if self.lab else as_float(images.gray)

    def targets(self, images: Images) -> torch.Tensor:
        """What the loss compares predictions with: ab / 110 (lab), Cb and Cr (ycbcr) or RGB in [0, 1] (rgb)."""
        if self.target == Target.ycbcr:
            target = rgb_to_cbcr(as_float(images.rgb))
        else:
            target = images.lab[:, 1:] / AB_SCALE if self.lab else as_float(images.rgb)
        # A smaller output is compared with the colour averaged over each of its pixels' blocks.
        return F.avg_pool2d(target, self.scale, ceil_mode=True) if self.scale > 1 else target

    def predict(self, luminance: torch.Tensor) -> torch.Tensor:
        """The net's prediction in the loss space: unbounded ab / 110 or Cb, Cr, or scores over chroma
        bins; or RGB squashed into [0, 1]."""
        return self.activate(self.net(luminance))

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """The net's raw output into the loss space (apart, so a DDP-wrapped net can produce it)."""
        return torch.sigmoid(out) if self.target == Target.rgb else out

    def to_rgb(
        self, luminance: torch.Tensor, prediction: torch.Tensor, keep_luminance: bool = False, made_from: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """RGB in [0, 1] at the luminance's size; a smaller prediction is upsampled bilinearly first
        (`made_from`: the size of the net's input, when that was not the luminance's: a photo's view).
        A lab or ycbcr model always keeps every pixel of L or of the gray and takes only the colour
        from the net. An rgb model returns its own RGB, or with keep_luminance (photos) only its
        colour: its RGB minus its own gray, added to the input gray, so the output's gray is the
        input's wherever it stays in gamut."""
        if self.target == Target.rgb and keep_luminance:
            prediction = prediction - (GRAY_WEIGHTS.to(prediction) * prediction).sum(1, keepdim=True)
        if self.bins:
            prediction = bins.read_out(prediction, self.temperature)  # before upsampling: 2 channels, not bins^2
        if self.saturation != 1 and self.target != Target.rgb:
            prediction = prediction * self.saturation
        h, w = luminance.shape[-2:]
        source_h, source_w = made_from or (h, w)
        if self.scale > 1 and prediction.shape[-2:] == (-(-source_h // self.scale), -(-source_w // self.scale)):
            # The net's own smaller output: each pixel is the centre of a scale x scale block of its input.
            prediction = F.interpolate(prediction, scale_factor=self.scale, mode="bilinear", align_corners=False)[..., :source_h, :source_w]
        if prediction.shape[-2:] != (h, w):
            prediction = F.interpolate(prediction, size=(h, w), mode="bilinear", align_corners=False)
        if self.target == Target.ycbcr:
            return cbcr_to_rgb(luminance, prediction)
        if self.lab:
            return lab_to_rgb_keeping_l(luminance * L_SCALE, prediction * AB_SCALE)
        return add_chroma(luminance, prediction) if keep_luminance else prediction

    def forward(self, luminance: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(luminance, self.predict(luminance))


# The net of a model config's net part (its `_target_` and the class's own arguments) with this many output channels.
NetFactory = Callable[[dict[str, Any], int], nn.Module]


def configured_net(params: dict[str, Any], out_channels: int) -> nn.Module:
    """The training config's own net (a user's config, so Hydra's instantiate; checkpoints use colorize.checkpoint.rebuild)."""
    return instantiate(params, out_channels=out_channels)


def build(model_config: Mapping[str, Any], make_net: NetFactory = configured_net) -> Colorizer:
    """A Colorizer from the `model` config: `_target_` picks the net, `target` the colour space."""
    params = dict(model_config)
    target = Target(params.pop("target", Target.rgb))
    classes, temperature, saturation = params.pop("bins", 0), params.pop("temperature", 1.0), params.pop("saturation", 1.0)
    net = make_net(params, classes**2 if classes else 3 if target == Target.rgb else 2)
    if target == Target.ycbcr:
        # Zero chroma (equal scores for every bin, whose centres average to zero) is the gray copy: a last layer at zero starts training from it. Its weights
        # still get gradients (its inputs are not zero), so the layers below start learning a step later.
        last = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return Colorizer(net, target, classes, temperature, saturation)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

