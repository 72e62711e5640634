"""Checkpoints: plain dicts written atomically, read with weights_only=True; where a trained model
comes from (a path, a runs:/ or a models:/ URI); and what a resumed run may change."""

import inspect
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from colorize import atomic
from colorize.config import Target, flatten
from colorize.errors import ColorizeError, first_line, one_line
from colorize.loop import Training
from colorize.models import NETS
from colorize.wrapper import Colorizer, colorizer

log = logging.getLogger(__name__)

# A resume must train the same model on the same split: these keys cannot change between starts.
FIXED_ON_RESUME = (
    "model.",
    "data.source",
    "data.image_size",
    "data.val_fraction",
    "data.seed",
    "data.limit",
    "loss.",
    "optimizer._target_",
)
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
    atomic.write(path, lambda tmp: torch.save(state, tmp))


def read(path: str | Path) -> dict[str, Any]:
    """A checkpoint's plain dict: weights_only loads tensors and containers, never pickled code."""
    path = Path(path)
    if not path.is_file():
        raise ColorizeError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ColorizeError(f"checkpoint {path} cannot be read ({one_line(error)})") from None
    weights, config = (state.get("model"), state.get("config")) if isinstance(state, dict) else (None, None)
    if not isinstance(weights, dict) or not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ColorizeError(
            f"checkpoint {path} holds no model weights and config: it was not written by colorize.train"
        )
    return state


def rebuild(spec: Any, known: Mapping[str, type], what: str, source: str, **given: Any) -> Any:
    """One of the `known` classes from a checkpoint's plain description: its `_target_` must name one,
    and its other keys must be that class's own arguments with plain values. Nothing a checkpoint
    names is imported or called otherwise, so a checkpoint someone hands over runs no code of theirs."""
    target = spec.get("_target_") if isinstance(spec, dict) else None
    if target not in known:
        raise ColorizeError(
            f"checkpoint {source}: its {what} is {target!r}, not one of colorize's ({', '.join(known)}); refused"
        )
    accepted = inspect.signature(known[target]).parameters
    params = {key: value for key, value in spec.items() if key != "_target_"}
    for key, value in params.items():
        if key not in accepted or key in given or not isinstance(value, (bool, int, float, str, type(None))):
            raise ColorizeError(
                f"checkpoint {source}: its {what} {target} has an argument {key}={value!r} that it does not take; refused"
            )
    try:
        return known[target](**params, **given)
    except (TypeError, ValueError) as error:
        raise ColorizeError(f"checkpoint {source}: its {what} {target} cannot be built ({one_line(error)})") from None


class Checkpoints:
    """A run's `last.pt` after every epoch and `best.pt` whenever val loss improves."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.last, self.best = folder / "last.pt", folder / "best.pt"
        self.config = config  # resolved, so a checkpoint alone says how to rebuild its model

    def save(self, training: Training, progress: Progress, improved: bool) -> None:
        state = {
            "model": training.model.state_dict(),
            "optimizer": training.optimizer.state_dict(),
            "epoch": progress.epoch,
            "best_val_loss": progress.best_val_loss,
            "history": progress.history,
            "rng": {"torch": torch.get_rng_state(), "shuffle": training.shuffle.get_state()},
            "config": self.config,
            "run_id": progress.run_id,
        }
        write(state, self.last)
        if improved:
            write(state, self.best)

    def written(self) -> list[Path]:
        return [path for path in (self.last, self.best) if path.exists()]


def resume(path: str, training: Training, config: dict[str, Any]) -> tuple[Progress, dict[str, str]]:
    """Restore weights, optimizer and random state from `path`; returns the progress and what the new
    config changes (`key: "old -> new"`). Changes that would train another model are refused."""
    atomic.remove_stale(Path(path).parent)  # left by a process killed mid-write
    state = read(path)
    if not all(key in state for key in ("optimizer", "epoch", "best_val_loss", "history", "rng", "run_id")):
        raise ColorizeError(
            f"trainer.resume={path} holds weights but no training state: resume from a last.pt or best.pt of colorize.train"
        )
    changes = config_changes(flatten(state["config"]), flatten(config))
    fixed = [key for key in changes if key.startswith(FIXED_ON_RESUME)]
    if fixed:
        raise ColorizeError(
            f"trainer.resume={path} was trained with other settings: {fixed[0]} {changes[fixed[0]]} cannot change on resume (start a new run)"
        )
    if state["epoch"] >= training.epochs:
        raise ColorizeError(f"trainer.resume={path} already holds epoch {state['epoch']}: raise trainer.epochs")
    try:
        training.model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise ColorizeError(f"trainer.resume={path}: its weights do not fit this model ({first_line(error)})") from None
    torch.set_rng_state(state["rng"]["torch"])
    training.shuffle.set_state(state["rng"]["shuffle"])
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
    config = state["config"]
    if not isinstance(config.get("data"), dict) or not isinstance(config["data"].get("image_size"), int):
        raise ColorizeError(
            f"checkpoint {source}: its config names no data.image_size: it was not written by colorize.train"
        )

    def make() -> Colorizer:
        try:
            return colorizer(
                config["model"],
                lambda params, out_channels: rebuild(params, NETS, "model", source, out_channels=out_channels),
            )
        except (TypeError, ValueError) as error:  # a target, bins or saturation of the wrong kind
            raise ColorizeError(f"checkpoint {source}: its model config cannot be read ({one_line(error)})") from None

    with torch.device("meta"):  # sized before anything is allocated: a config that does not fit its weights stops here
        expected = {key: tuple(value.shape) for key, value in make().state_dict().items()}
    given = {
        key: tuple(value.shape) if isinstance(value, torch.Tensor) else value for key, value in state["model"].items()
    }
    if given != expected:
        wrong = next(key for key in sorted(set(expected) | set(given), key=str) if given.get(key) != expected.get(key))
        raise ColorizeError(
            f"checkpoint {source}: its weights do not fit the model in its config ({wrong}: {given.get(wrong, 'missing')} "
            f"in the weights, {expected.get(wrong, 'none')} in the model)"
        )
    model = make()
    model.load_state_dict(state["model"])
    if temperature is not None:
        if not model.bins:
            raise ColorizeError(
                f"temperature={temperature}: checkpoint {source} regresses its colour (model.bins=0); only a bins model has a read-out temperature"
            )
        model.temperature = temperature
    if saturation is not None:
        if model.target == Target.rgb:
            raise ColorizeError(
                f"saturation={saturation}: checkpoint {source} predicts RGB; only lab and ycbcr models predict a colour to scale"
            )
        model.saturation = saturation
    return model.eval(), state["config"]
