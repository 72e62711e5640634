"""What every command does around its work: before Hydra writes anything, passwords moved out of the
config and a config that cannot resolve refused (`Guard`, a Hydra callback); then one line and exit 1
for a user-facing error, and SIGTERM treated as Ctrl-C so runs end KILLED, not RUNNING."""

import re
import signal
import sys
from typing import Any, Callable, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from colorize import config, reference, secrets
from colorize.errors import ColorizeError, first_line

T = TypeVar("T")
INTERRUPTED_EXIT = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)


def register() -> None:
    """What every entry's config needs before Hydra composes it: the schemas, and the resolver
    hydra.help.template calls for --help (every group and key, from the schemas' comments)."""
    config.register()
    if not OmegaConf.has_resolver("colorize_help"):
        OmegaConf.register_new_resolver("colorize_help", reference.help_text)


class Guard(Callback):
    """hydra.callbacks.guard of every command's config: runs once the config is composed, before the
    run's (or sweep's) first file is written."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        prepare(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        prepare(config, "hydra.sweep.dir")


def prepare(config: DictConfig, output_key: str) -> None:
    secrets.hide(config)
    try:
        OmegaConf.select(config, output_key, throw_on_missing=True)
        secrets.resolved(config)
    except OmegaConfBaseException as error:  # ${oc.env:UNSET}, ${no.such.key}: Hydra would print a traceback
        raise SystemExit(f"colorize: error: {described(error)}") from None


def described(error: OmegaConfBaseException) -> str:
    key = getattr(error, "full_key", None)
    # A resolver's own error (oc.env's KeyError) comes wrapped: `KeyError raised while resolving interpolation: "..."`.
    text = re.sub(r'^\w+ raised while resolving interpolation: "?(.*?)"?$', r"\1", first_line(error))
    return secrets.mask(f"{key}: {text}" if key else text)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(command: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return command(cfg)
    except (ColorizeError, OmegaConfBaseException, KeyboardInterrupt) as error:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial (failed or interrupted); SystemExit would end the sweep
        if isinstance(error, KeyboardInterrupt):
            print(f"colorize: interrupted ({str(error) or 'Ctrl-C'})", file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT) from None
        message = described(error) if isinstance(error, OmegaConfBaseException) else str(error)
        raise SystemExit(f"colorize: error: {message}") from None
