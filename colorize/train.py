"""`python -m colorize.train`: the Hydra entry point and the recipe of a run. The config stops here."""

import contextlib
import logging
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from colorize import cli
from colorize.config import TrainerConfig, check, flatten, register

log = logging.getLogger(__name__)
register()


def train(cfg: DictConfig) -> float:
    check(cfg)
    # Heavy imports only once the config is valid: --help and config errors answer fast.
    import torch

    from colorize import checkpoint, data, parts, records, tracking
    from colorize.device import pick_device
    from colorize.loop import fit

    trial = open_trial()  # first: a sweep's storage problem surfaces before any data is loaded
    trainer: TrainerConfig = OmegaConf.to_object(cfg.trainer)
    device = pick_device(trainer.device)
    torch.manual_seed(trainer.seed)
    run = parts.build(data.Source.from_config(cfg.data, cfg.paths.cache_dir), cfg.model, cfg.optimizer, cfg.loss, trainer, device)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    progress, changes = checkpoint.Progress(), {}
    if trainer.resume:
        progress, changes = checkpoint.resume(trainer.resume, run.model, run.optimizer, run.shuffle, config, trainer.epochs)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    saved = checkpoint.Checkpoints(out_dir / "checkpoints", config)
    params = {**flatten(config), "model.parameters": sum(p.numel() for p in run.model.parameters())}
    name, tags = describe(cfg, out_dir, trial, changes)
    parent = trial.parent_run_id if trial is not None else None
    epochs = range(progress.epoch + 1, trainer.epochs + 1)
    with reporting(trial), tracking.start_run(cfg.tracking.uri, cfg.tracking.experiment, name, params, tags, progress.run_id, parent) as tracker:
        progress.run_id = tracker.run_id
        if trial is not None:
            trial.attach(tracker.run_id)
        log.info("MLflow run %s; outputs in %s", tracker.run_id, out_dir)
        log.info("training starts: %d train / %d val images on %s, precision %s", len(run.data.train), len(run.data.val), device, run.precision)
        for epoch in fit(run.model, run.optimizer, run.loss_fn, run.data, trainer.epochs, run.settings, run.shuffle, epochs.start, run.lr_at):
            improved = progress.record(epoch.epoch, epoch.train_loss, epoch.val["loss"])
            saved.save(run.model, run.optimizer, run.shuffle, progress, improved)
            records.log_epoch(tracker, epoch, run.model, run.data.val, epochs, cfg.tracking.grid_every, cfg.tracking.grid_images)
            objective = epoch.val[cfg.objective.metric.removeprefix("val_")]
            if trial is not None and trial.should_stop(objective, epoch.epoch, trainer.epochs):
                break
        records.log_end(tracker, run.model, run.data.val, progress.history, OmegaConf.to_yaml(config), saved.written())
    return objective


def describe(cfg: DictConfig, out_dir: Path, trial: Optional[Any], changes: dict[str, str]) -> tuple[Optional[str], dict[str, str]]:
    """The MLflow run's name and tags: what was overridden, where outputs go, which commit, which
    trial, and what a resume changed (MLflow params cannot change once logged)."""
    from colorize import tracking

    hydra_cfg = HydraConfig.get()
    tags = {"hydra.overrides": " ".join(hydra_cfg.overrides.task) or "(none)", "output_dir": str(out_dir)}
    commit = tracking.git_commit(Path(cfg.paths.root_dir))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tags.update({f"resume.changed.{key}": change for key, change in changes.items()})
    name = cfg.tracking.run_name
    if trial is not None:
        tags.update(trial.tags)
        name = name or f"{trial.study.study_name}-trial-{trial.number}"
    return name, tags


def open_trial() -> Optional[Any]:
    """The Optuna trial of a run that the colorize_optuna sweeper launched (colorize.sweeping.SweepTrial), else None."""
    if not HydraConfig.initialized() or HydraConfig.get().sweeper.get("trial_id") is None:
        return None
    # optuna and its storage: a second of imports, only for sweeps
    from colorize import sweeping
    from hydra_plugins.colorize_sweeper.trial import current

    return sweeping.SweepTrial(current())


def reporting(trial: Optional[Any]) -> contextlib.AbstractContextManager:
    """Tells a sweep's trial how the run ended; nothing outside a sweep."""
    if trial is None:
        return contextlib.nullcontext()
    from colorize import sweeping

    return sweeping.reporting(trial)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return cli.run(train, cfg)


if __name__ == "__main__":
    main()
