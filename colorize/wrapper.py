"""The model users see: luminance in, RGB in [0, 1] out. It owns the colour space the net predicts
in (its input, its loss-space target, and the way back to RGB), so the loop and metrics need not."""

from pathlib import Path
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from colorize import checkpoint
from colorize.color import AB_SCALE, L_SCALE, as_float, lab_to_rgb
from colorize.config import Target
from colorize.errors import ColorizeError, first_line
from colorize.data import Images


class Colorizer(nn.Module):
    def __init__(self, net: nn.Module, target: Target) -> None:
        super().__init__()
        self.net = net
        self.lab = target == Target.lab
        self.fixed_size: Optional[int] = getattr(net, "image_size", None)  # None: fully convolutional

    def inputs(self, images: Images) -> torch.Tensor:
        """The net's input, (N, 1, H, W) in [0, 1]: L / 100 (lab) or OpenCV's gray / 255 (rgb)."""
        return images.lab[:, :1] / L_SCALE if self.lab else as_float(images.gray)

    def targets(self, images: Images) -> torch.Tensor:
        """What the loss compares predictions with: ab / 110 (lab) or RGB in [0, 1] (rgb)."""
        return images.lab[:, 1:] / AB_SCALE if self.lab else as_float(images.rgb)

    def predict(self, luminance: torch.Tensor) -> torch.Tensor:
        """The net's prediction in the loss space: unbounded ab / 110, or RGB squashed into [0, 1]."""
        out = self.net(luminance)
        return out if self.lab else torch.sigmoid(out)

    def to_rgb(self, luminance: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] at the luminance's size; a smaller prediction is upsampled bilinearly first,
        so a lab model keeps every pixel of L and only its ab is interpolated."""
        if prediction.shape[-2:] != luminance.shape[-2:]:
            prediction = F.interpolate(prediction, size=luminance.shape[-2:], mode="bilinear", align_corners=False)
        if not self.lab:
            return prediction
        return lab_to_rgb(torch.cat([luminance * L_SCALE, prediction * AB_SCALE], 1))

    def forward(self, luminance: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(luminance, self.predict(luminance))


def build(model_config: Mapping[str, Any]) -> Colorizer:
    """A Colorizer from the `model` config: `_target_` picks the net, `target` the colour space."""
    params = dict(model_config)
    target = Target(params.pop("target", Target.rgb))
    net = instantiate(params, out_channels=2 if target == Target.lab else 3)
    return Colorizer(net, target)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load(source: str, tracking_uri: str) -> tuple[Colorizer, dict[str, Any]]:
    """A trained model and its resolved training config, from a checkpoint path or a runs:/ URI."""
    if source.startswith("runs:/"):
        from colorize import tracking  # mlflow is slow to import: only when asked for

        path: Path = tracking.download_checkpoint(source, tracking_uri)
    else:
        path = Path(source)
    state = checkpoint.load(path)
    if "model" not in state or "config" not in state:
        raise ColorizeError(f"checkpoint {source} has no model state or config: not written by colorize.train")
    model = build(state["config"]["model"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:  # missing, unexpected or mis-shaped weights
        raise ColorizeError(f"checkpoint {source}: its weights do not fit the model in its config ({first_line(error)})") from None
    return model.eval(), state["config"]
