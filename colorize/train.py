"""`python -m colorize.train`: the Hydra entry point and the recipe of a run. The config stops here."""

import contextlib
import logging
from pathlib import Path
from typing import Any, Optional, Union

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from colorize import cli, secrets
from colorize.config import TrainerConfig, check, flatten, objectives

log = logging.getLogger(__name__)
cli.register()


def train(cfg: DictConfig) -> Union[float, tuple[float, ...]]:
    """The last epoch's objective: one value, or a tuple of them when objective.metric is a list."""
    check(cfg)
    metrics = [metric for metric, _ in objectives(cfg)]
    # Heavy imports only once the config is valid: --help and config errors answer fast.
    import torch

    from colorize import checkpoint, data, distributed, parts, records
    from colorize.device import pick_device
    from colorize.loop import fit

    trainer: TrainerConfig = OmegaConf.to_object(cfg.trainer)
    ranks = distributed.setup(trainer.batch_size)  # several processes when started by torchrun
    # Before any data is loaded, so a sweep's storage problem surfaces at once; rank 0 alone reports.
    trial = open_trial() if ranks.main else None
    device = pick_device(distributed.device_for(ranks, trainer.device))
    torch.manual_seed(trainer.seed)
    source = data.Source.from_config(cfg.data, cfg.paths.cache_dir)
    training = parts.training(source, cfg.model, cfg.optimizer, cfg.loss, trainer, device, ranks)
    config = secrets.resolved(cfg)  # what the run records (params, config.yaml, checkpoints): passwords masked
    progress, changes = checkpoint.Progress(), {}
    if trainer.resume:
        progress, changes = checkpoint.resume(trainer.resume, training, config)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    epochs = range(progress.epoch + 1, trainer.epochs + 1)
    with (
        pruned_when_diverged(trial),
        open_run(cfg, config, out_dir, training.model, trial, changes, progress.run_id, ranks.main) as tracker,
    ):
        progress.run_id = tracker.run_id
        if trial is not None:
            trial.attach(tracker.run_id)
        log.info("MLflow run %s; outputs in %s", tracker.run_id, out_dir)
        grids = records.Grids(cfg.tracking.grid_every, cfg.tracking.grid_images, epochs)
        recorder = records.Recorder(tracker, checkpoint.Checkpoints(out_dir / "checkpoints", config), grids, ranks.main)
        recorder.data(source, training.data)
        log.info(
            "training starts: %d train / %d val images on %s, precision %s",
            len(training.data.train),
            len(training.data.val),
            device,
            training.precision,
        )
        for epoch in fit(training, epochs.start):
            recorder.epoch(epoch, training, progress)
            objective = tuple(epoch.val[metric.removeprefix("val_")] for metric in metrics)
            if distributed.agree(trial is not None and trial.should_stop(objective, epoch.epoch, trainer.epochs)):
                break  # pruned: rank 0 decides, every process stops
        gray_copy = recorder.end(training, progress, OmegaConf.to_yaml(config), cfg.tracking.register)
    if trial is not None:
        trial.compare(metrics, gray_copy)  # the sweep's summary sets its best trial beside the gray copy
        if trial.pruned_at is not None:
            import optuna

            raise optuna.TrialPruned(
                f"after epoch {trial.pruned_at}"
            )  # the run itself ended FINISHED, with all it logged
    elif ranks.main:
        from colorize import summary, tracking

        run = tracking.run_page(cfg.tracking.uri, progress.run_id)
        baselines = {
            name.removeprefix("gray_copy_"): value for name, value in gray_copy.items() if name.startswith("gray_copy_")
        }
        print(
            summary.of_training(
                run,
                progress.run_id,
                progress.epoch,
                epoch.val,
                baselines,
                out_dir / "checkpoints",
                secrets.mask(cfg.tracking.uri),
            ),
            flush=True,
        )
    return objective[0] if len(objective) == 1 else objective


def open_run(
    cfg: DictConfig,
    config: dict,
    out_dir: Path,
    model: Any,
    trial: Optional[Any],
    changes: dict[str, str],
    run_id: Optional[str],
    main: bool,
) -> contextlib.AbstractContextManager:
    """The run's MLflow run (a resume's continues `run_id`), named and tagged from the config. Only
    rank 0 of a multi-process run tracks (and writes checkpoints); the others only train."""
    from colorize import tracking

    if not main:
        return tracking.untracked()
    params = {**flatten(config), "model.parameters": sum(p.numel() for p in model.parameters())}
    name, tags = describe(cfg, out_dir, trial, changes)
    parent = trial.parent_run_id if trial is not None else None
    named = (
        cfg.tracking.run_name is not None or trial is not None
    )  # else describe() named it for its config: add the id
    return tracking.start_run(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        name,
        params,
        tags,
        run_id,
        parent,
        suffix=not named,
        system_metrics=cfg.tracking.system_metrics,
    )


def describe(
    cfg: DictConfig, out_dir: Path, trial: Optional[Any], changes: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """The MLflow run's name and tags: what was overridden, where outputs go, which commit, which
    trial, and what a resume changed (MLflow params cannot change once logged). The name is
    tracking.run_name, else a sweep trial's `<study>-trial-<n>`, else what the run trains: the
    preset (experiment=...) or model, width and target, e.g. `unet-w16-rgb`."""
    from colorize import tracking

    hydra_cfg = HydraConfig.get()
    tags = {"hydra.overrides": secrets.mask(" ".join(hydra_cfg.overrides.task)) or "(none)", "output_dir": str(out_dir)}
    commit = tracking.git_commit(Path(cfg.paths.root_dir))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tags.update({f"resume.changed.{key}": change for key, change in changes.items()})
    name = cfg.tracking.run_name
    if trial is not None:
        tags.update(trial.tags)
        name = name or f"{trial.study_name}-trial-{trial.number}"
    preset = hydra_cfg.runtime.choices.get("experiment")
    model = f"{hydra_cfg.runtime.choices.get('model')}-w{cfg.model.width}-{cfg.model.target.value}"
    return name or preset or model, tags


def open_trial() -> Optional[Any]:
    """The Optuna trial of a run that this project's sweeper launched (colorize.sweeping.SweepTrial), else None."""
    if not HydraConfig.initialized() or HydraConfig.get().sweeper.get("trial_id") is None:
        return None
    from colorize import sweeping  # optuna and its storage: a second of imports, only for sweeps

    return sweeping.open_trial()


def pruned_when_diverged(trial: Optional[Any]) -> contextlib.AbstractContextManager:
    if trial is None:
        return contextlib.nullcontext()
    from colorize import sweeping

    return sweeping.pruned_when_diverged(trial)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> Union[float, tuple[float, ...]]:
    return cli.run(train, cfg)


if __name__ == "__main__":
    main()
