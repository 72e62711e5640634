"""What every command's `@hydra.main` does around its work: one line and exit 1 for a user-facing
error, and SIGTERM treated as Ctrl-C so runs end KILLED, not RUNNING."""

import signal
import sys
from typing import Callable, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from colorize.errors import ColorizeError

T = TypeVar("T")
INTERRUPTED_EXIT = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(command: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return command(cfg)
    except (ColorizeError, KeyboardInterrupt) as error:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial (failed or interrupted); SystemExit would end the sweep
        if isinstance(error, KeyboardInterrupt):
            print(f"colorize: interrupted ({error or 'Ctrl-C'})", file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT) from None
        raise SystemExit(f"colorize: error: {error}") from None
