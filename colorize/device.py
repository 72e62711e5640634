"""Where tensors live."""

import torch

from colorize.errors import ColorizeError


TRAINING_DEVICES = ("cpu", "cuda", "mps")  # torch knows more (meta, xla...), which hold no data to train on


def pick_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; anything else is taken as torch spells it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in TRAINING_DEVICES:
        raise ColorizeError(f"{key}={name} is not a device to train on (auto, cpu, cuda, cuda:N, mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ColorizeError(f"{key}={name} but CUDA is not available here (use trainer.device=auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ColorizeError(f"{key}={name} but MPS is not available here (use trainer.device=auto)")
    return device
