"""Where tensors live."""

import torch

from colorize.errors import ColorizeError


def pick_device(name: str) -> torch.device:
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
        raise ColorizeError(f"trainer.device={name} is not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ColorizeError(f"trainer.device={name} but CUDA is not available here (use trainer.device=auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ColorizeError(f"trainer.device={name} but MPS is not available here (use trainer.device=auto)")
    return device
