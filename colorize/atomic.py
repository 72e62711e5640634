"""Every file the project writes (checkpoints, the folder cache, evaluate's report, the photo command's
PNGs) is written whole or not at all: into a temporary file beside it, renamed over it once complete.
os.replace is atomic on POSIX, so a reader sees the old file or the new one, never half; a failed or
interrupted write removes its temporary file and leaves the target as it was."""

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable

from colorize.errors import ColorizeError, one_line

STALE = ".*.tmp"  # the temporary files of writers killed mid-write (SIGKILL cannot clean up)


def temporary(path: Path) -> Path:
    # Unique per write: processes writing the same target at once (runs started together on a new
    # folder's cache) each rename a whole file of their own, and the last rename wins.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def write(path: Path, fill: Callable[[Path], None]) -> None:
    """`fill` writes the content to the temporary path it is given (a path, not an open file: torch.save
    then writes from C++, and a Ctrl-C arriving meanwhile stays a KeyboardInterrupt instead of turning
    into its RuntimeError). A failure is one line naming the file and the space left on its disk (a
    full disk reaches torch.save as 'unexpected pos', which names neither)."""
    if path.is_dir():
        raise ColorizeError(f"cannot write {path}: it is a folder")
    tmp = temporary(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fill(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())  # on disk before the rename: a power cut never leaves an empty target
        os.replace(tmp, path)
    except ColorizeError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as error:
        tmp.unlink(missing_ok=True)
        raise ColorizeError(f"cannot write {path} ({one_line(error)}){free_space(path)}") from None
    except BaseException:  # Ctrl-C or SIGTERM mid-write: no half file either, and the interrupt goes on
        tmp.unlink(missing_ok=True)
        raise


def free_space(path: Path) -> str:
    folder = next((p for p in (path, *path.parents) if p.exists()), None)
    return "" if folder is None else f"; {shutil.disk_usage(folder).free / 2**20:.0f} MiB free on its disk"


def remove_stale(folder: Path) -> None:
    for stale in folder.glob(STALE):
        stale.unlink(missing_ok=True)


def refuse_inputs(path: Path, inputs: Iterable[Path], key: str) -> None:
    """Before any work: one line when `path` would replace one of the command's own inputs."""
    if path.exists() and any(path.resolve() == Path(given).resolve() for given in inputs):
        raise ColorizeError(f"{key}={path} would overwrite an input of this command: choose another path")
