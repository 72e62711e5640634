"""Model families, one file each; configs pick one with `_target_`."""

from torch import nn

from colorize.models.convae import ConvAE
from colorize.models.convnet import ConvNet
from colorize.models.unet import UNet

# The nets a checkpoint may name (colorize.checkpoint.rebuild), by the `_target_` their configs give.
NETS: dict[str, type[nn.Module]] = {f"{net.__module__}.{net.__name__}": net for net in (ConvNet, ConvAE, UNet)}
