"""Where tensors live."""

from typing import Optional

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


def free_memory(device: torch.device) -> Optional[int]:
    """Bytes free on `device`, or None where that cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:  # Linux: MemAvailable counts reclaimable caches
                fields = dict(line.split(":", 1) for line in meminfo)
            return int(fields["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):  # not Linux: no check rather than a wrong one
            return None
    return None
