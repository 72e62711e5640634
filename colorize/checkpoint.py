"""Checkpoints: plain dicts written atomically, read with weights_only=True; where a trained model
comes from (a path, a runs:/ or a models:/ URI); and what a resumed run may change."""

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from colorize.config import Target, flatten
from colorize.errors import ColorizeError, first_line, one_line
from colorize.wrapper import Colorizer, build

log = logging.getLogger(__name__)

# A resume must train the same model on the same split: these keys cannot change between starts.
FIXED_ON_RESUME = ("model.", "data.source", "data.image_size", "data.val_fraction", "data.seed", "data.limit", "loss.", "optimizer._target_")
# Where a run writes or who launched it: a new value on resume is no change to the training.
IGNORED_ON_RESUME = ("paths.", "trial.", "trainer.resume", "trainer.progress", "tracking.")


@dataclass
class Progress:
    """How far a run has got: what a checkpoint adds to the weights to continue exactly."""

    epoch: int = 0  # the last finished epoch; 0 before the first
    best_val_loss: float = math.inf
    history: dict[str, list[float]] = field(default_factory=lambda: {"train_loss": [], "val_loss": []})
    run_id: Optional[str] = None  # the MLflow run a resume continues

    def record(self, epoch: int, train_loss: float, val_loss: float) -> bool:
        """Count a finished epoch; True when its val loss is the best so far."""
        self.epoch = epoch
        self.history["train_loss"].append(train_loss)
        self.history["val_loss"].append(val_loss)
        improved = val_loss < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, val_loss)
        return improved


def write(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half
    except Exception as error:  # no half file left behind
        tmp.unlink(missing_ok=True)
        # A full disk reaches here as torch's "[enforce fail at inline_container.cc] unexpected pos",
        # which names neither the file nor the cause: say both, with the space left (MiB).
        free = shutil.disk_usage(path.parent).free / 2**20
        raise ColorizeError(f"cannot write checkpoint {path} ({one_line(error)}); {free:.0f} MiB free on its disk") from None
    except BaseException:  # Ctrl-C or SIGTERM mid-write: no half file either, and the interrupt goes on
        tmp.unlink(missing_ok=True)
        raise


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ColorizeError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ColorizeError(f"checkpoint {path} cannot be read ({one_line(error)})") from None


class Checkpoints:
    """A run's `last.pt` after every epoch and `best.pt` whenever val loss improves."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.last, self.best = folder / "last.pt", folder / "best.pt"
        self.config = config  # resolved, so a checkpoint alone says how to rebuild its model

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, progress: Progress, improved: bool) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": progress.epoch,
            "best_val_loss": progress.best_val_loss,
            "history": progress.history,
            "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
            "config": self.config,
            "run_id": progress.run_id,
        }
        write(state, self.last)
        if improved:
            write(state, self.best)

    def written(self) -> list[Path]:
        return [path for path in (self.last, self.best) if path.exists()]


def resume(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, config: dict[str, Any], epochs: int) -> tuple[Progress, dict[str, str]]:
    """Restore weights, optimizer and random state from `path`; returns the progress and what the new
    config changes (`key: "old -> new"`). Changes that would train another model are refused."""
    for stale in Path(path).parent.glob("*.pt.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    state = read(path)
    changes = config_changes(flatten(state.get("config", {})), flatten(config))
    fixed = [key for key in changes if key.startswith(FIXED_ON_RESUME)]
    if fixed:
        raise ColorizeError(f"trainer.resume={path} was trained with other settings: {fixed[0]} {changes[fixed[0]]} cannot change on resume (start a new run)")
    if state["epoch"] >= epochs:
        raise ColorizeError(f"trainer.resume={path} already holds epoch {state['epoch']}: raise trainer.epochs")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise ColorizeError(f"trainer.resume={path}: its weights do not fit this model ({first_line(error)})") from None
    torch.set_rng_state(state["rng"]["torch"])
    shuffle.set_state(state["rng"]["shuffle"])
    progress = Progress(state["epoch"], state["best_val_loss"], state["history"], state["run_id"])
    log.info("resuming %s after epoch %d%s", path, progress.epoch, "".join(f"; {k}: {v}" for k, v in changes.items()))
    return progress, changes


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    keys = sorted(set(before) | set(after))
    return {
        key: f"{before.get(key)} -> {after.get(key)}"
        for key in keys
        if before.get(key) != after.get(key) and not key.startswith(IGNORED_ON_RESUME)
    }


def resolve(source: str, tracking_uri: str) -> Path:
    """The checkpoint file behind `checkpoint=`: a path, or the best.pt a run logged (runs:/<id>/...),
    or that of the run behind a registered model's version (models:/<name>/<version>, models:/<name>@<alias>)."""
    if source.startswith(("runs:/", "models:/")):
        from colorize import tracking  # mlflow is slow to import: only when asked for

        return tracking.download_checkpoint(source, tracking_uri)
    return Path(source)


def load_model(
    source: str, tracking_uri: str, temperature: Optional[float] = None, saturation: Optional[float] = None
) -> tuple[Colorizer, dict[str, Any]]:
    """A trained model in eval mode and its resolved training config; read out at `temperature`
    (bins models) and `saturation` (lab, ycbcr) when given: the read-out is not trained."""
    state = read(resolve(source, tracking_uri))
    if "model" not in state or "config" not in state:
        raise ColorizeError(f"checkpoint {source} has no model state or config: not written by colorize.train")
    model = build(state["config"]["model"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:  # missing, unexpected or mis-shaped weights
        raise ColorizeError(f"checkpoint {source}: its weights do not fit the model in its config ({first_line(error)})") from None
    if temperature is not None:
        if not model.bins:
            raise ColorizeError(f"temperature={temperature}: checkpoint {source} regresses its colour (model.bins=0); only a bins model has a read-out temperature")
        model.temperature = temperature
    if saturation is not None:
        if model.target == Target.rgb:
            raise ColorizeError(f"saturation={saturation}: checkpoint {source} predicts RGB; only lab and ycbcr models predict a colour to scale")
        model.saturation = saturation
    return model.eval(), state["config"]
