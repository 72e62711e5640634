"""A results page: what a benchmark printed, stamped with the date, the machine, its load and the command."""

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path


def write(path: Path, title: str, printed: str, note: str = "") -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}"
    command = shlex.join(["python", *sys.argv])
    body = f"# {title}\n\nMeasured {stamp} on {machine}, by `{command}` (the page is that command's output).\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body + (note + "\n\n" if note else "") + f"```\n{printed.rstrip()}\n```\n")
