"""Plain-dict checkpoints, written atomically and read with weights_only=True."""

import os
from pathlib import Path
from typing import Any

import torch

from colorize.errors import ColorizeError, one_line


def save(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ColorizeError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ColorizeError(f"checkpoint {path} cannot be read ({one_line(error)})") from None
