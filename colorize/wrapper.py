"""The model users see: luminance in, RGB in [0, 1] out. It owns the colour space the net predicts
in (its input, its loss-space target, and the way back to RGB), so the loop and metrics need not."""

from typing import Any, Callable, Mapping, Optional

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from colorize.bins import read_out
from colorize.color import (
    AB_SCALE,
    GRAY_WEIGHTS,
    L_SCALE,
    add_chroma,
    as_float,
    cbcr_to_rgb,
    gray,
    lab_to_rgb_keeping_l,
    rgb_to_cbcr,
    rgb_to_lab,
)
from colorize.config import Target
from colorize.images import Images
from colorize.models.blocks import crop


class Colorizer(nn.Module):
    def __init__(
        self, net: nn.Module, target: Target, bins: int = 0, temperature: float = 1.0, saturation: float = 1.0
    ) -> None:
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

    def colour(self, prediction: torch.Tensor, keep_luminance: bool = False) -> torch.Tensor:
        """A prediction's colour at the net's output size: Cb and Cr (ycbcr) or ab / 110 (lab), read
        out from the bins' scores (bins models) and times the saturation; an rgb model's RGB, or with
        keep_luminance its RGB minus its own gray (what it adds to a gray)."""
        if self.target == Target.rgb:
            return (
                prediction - (GRAY_WEIGHTS.to(prediction) * prediction).sum(1, keepdim=True)
                if keep_luminance
                else prediction
            )
        if self.bins:
            prediction = read_out(prediction, self.temperature)  # before any upsampling: 2 channels, not bins^2
        return prediction * self.saturation if self.saturation != 1 else prediction

    def at_input_size(self, colour: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A net's smaller output (out_level) back at the size of its input: each of its pixels is the
        centre of a scale x scale block of the input, so a bilinear upsampling by the scale, cropped."""
        if self.scale == 1:
            return colour
        return crop(F.interpolate(colour, scale_factor=self.scale, mode="bilinear", align_corners=False), height, width)

    def render(self, luminance: torch.Tensor, colour: torch.Tensor, keep_luminance: bool = False) -> torch.Tensor:
        """RGB in [0, 1] of a luminance and a colour of its size. A lab or ycbcr model keeps every pixel
        of L or of the gray and takes only the colour; an rgb model gives its own RGB, or with
        keep_luminance (photos) adds its colour to the gray. Colour that leaves the sRGB gamut is
        scaled down, never clipped per channel, so the luminance holds on every pixel."""
        if self.target == Target.ycbcr:
            return cbcr_to_rgb(luminance, colour)
        if self.lab:
            return lab_to_rgb_keeping_l(luminance * L_SCALE, colour * AB_SCALE)
        return add_chroma(luminance, colour) if keep_luminance else colour

    def to_rgb(self, luminance: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] of the net's input and its prediction: what the metrics score."""
        return self.render(luminance, self.at_input_size(self.colour(prediction), *luminance.shape[-2:]))

    def luminance(self, pixels: torch.Tensor) -> torch.Tensor:
        """The net's input made from (N, 3, H, W) RGB in [0, 1]: L / 100 (lab) or OpenCV's gray / 255,
        of the pixels rounded to 8 bits as the training images were."""
        if self.lab:
            return rgb_to_lab(pixels)[:, :1] / L_SCALE
        return as_float(gray((pixels * 255).round().to(torch.uint8)))

    def colour_photo(self, pixels: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] of a photo (colour or gray), coloured keeping its own luminance,
        the colour predicted from `view`, the photo at the scale the net was trained at (or the photo
        itself), and upsampled to it. A fixed-size net gets the view padded with its edge pixels up to
        its size, and the padding's colour is dropped. The one colouring of the photo command,
        evaluate's photo mode, the gallery and the logged model (colorize.photo prepares its inputs)."""
        seen = self.luminance(view)
        height, width = seen.shape[-2:]
        if self.fixed_size is not None:
            seen = F.pad(seen, (0, self.fixed_size - width, 0, self.fixed_size - height), mode="replicate")
        colour = crop(
            self.at_input_size(self.colour(self.predict(seen), keep_luminance=True), *seen.shape[-2:]), height, width
        )
        colour = F.interpolate(colour, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
        return self.render(self.luminance(pixels), colour, keep_luminance=True)

    def forward(self, luminance: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(luminance, self.predict(luminance))


# The net of a model config's net part (its `_target_` and the class's own arguments) with this many output channels.
NetFactory = Callable[[dict[str, Any], int], nn.Module]


def configured_net(params: dict[str, Any], out_channels: int) -> nn.Module:
    """The training config's own net (a user's config, so Hydra's instantiate; checkpoints use colorize.checkpoint.rebuild)."""
    return instantiate(params, out_channels=out_channels)


def colorizer(model_config: Mapping[str, Any], make_net: NetFactory = configured_net) -> Colorizer:
    """A Colorizer from the `model` config: `_target_` picks the net, `target` the colour space."""
    params = dict(model_config)
    target = Target(params.pop("target", Target.rgb))
    classes, temperature, saturation = (
        params.pop("bins", 0),
        params.pop("temperature", 1.0),
        params.pop("saturation", 1.0),
    )
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


class Photos(nn.Module):
    """A Colorizer's colour_photo as a module's forward: what torch.export exports for the logged model."""

    def __init__(self, model: Colorizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        return self.model.colour_photo(pixels, view)


def exported(model: Colorizer, pixels: torch.Tensor, view: torch.Tensor) -> torch.export.ExportedProgram:
    """colour_photo as a torch.export program for photos of any size and batches of any length (an
    example photo and its view given): a graph and its weights, loaded with torch alone."""
    every = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    with torch.no_grad():
        return torch.export.export(
            Photos(model.eval()), (pixels, view), dynamic_shapes={"pixels": every, "view": every}, strict=False
        )
