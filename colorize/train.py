"""`python -m colorize.train`: the Hydra entry point. The config stops here."""

import contextlib
import logging
import math
from functools import partial
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from colorize import cli
from colorize.config import Target, check, register
from colorize.errors import ColorizeError

log = logging.getLogger(__name__)
register()


def train(cfg: DictConfig) -> float:
    check(cfg)
    # Heavy imports only once the config is valid: --help and config errors answer fast.
    import torch
    from hydra.utils import instantiate

    from colorize import checkpoint, colorizer, data, plots, tracking
    from colorize.color import as_float
    from colorize.device import pick_device
    from colorize.loop import Settings, cosine_lr, fit
    from colorize.metrics import baselines, predict

    # A sweep's trial first: a storage problem surfaces before any data is loaded.
    trial, reporting = None, contextlib.nullcontext()
    if cfg.trial.id is not None:
        from colorize import sweeping  # optuna and its storage: a second of imports, only for sweeps

        trial = sweeping.SweepTrial(cfg.trial.storage, cfg.trial.study, cfg.trial.id)
        reporting = sweeping.reporting(trial)
    device = pick_device(cfg.trainer.device)
    resume = checkpoint.load(cfg.trainer.resume) if cfg.trainer.resume else None
    torch.manual_seed(cfg.trainer.seed)
    split = data.load(data.Source.from_config(cfg.data, cfg.paths.cache_dir), device, with_lab=cfg.model.target == Target.lab)
    model = colorizer.build(cfg.model).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:
        model.net.compile()  # in place, so state_dict keys stay those of the plain model
    precision = cfg.trainer.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "32"
    settings = Settings(
        batch_size=cfg.trainer.batch_size,
        autocast=torch.bfloat16 if precision == "bf16" else None,
        channels_last=cfg.trainer.channels_last,
        progress=cfg.trainer.progress,
    )
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    loss_fn = instantiate(cfg.loss)
    shuffle = torch.Generator(device=device).manual_seed(cfg.trainer.seed)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    start_epoch, best_val_loss, run_id = 1, math.inf, None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["rng"]["torch"])
        shuffle.set_state(resume["rng"]["shuffle"])
        start_epoch, best_val_loss = resume["epoch"] + 1, resume["best_val_loss"]
        history, run_id = resume["history"], resume["run_id"]
        if start_epoch > cfg.trainer.epochs:
            raise ColorizeError(f"trainer.resume={cfg.trainer.resume} already holds epoch {resume['epoch']}: raise trainer.epochs")
        log.info("resuming %s after epoch %d", cfg.trainer.resume, resume["epoch"])

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    tags = {"hydra.overrides": " ".join(hydra_cfg.overrides.task) or "(none)", "output_dir": str(out_dir)}
    commit = tracking.git_commit(Path(cfg.paths.root_dir))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    run_name = cfg.tracking.run_name
    if trial is not None:
        tags.update(trial.tags)
        run_name = run_name or f"{trial.study.study_name}-trial-{trial.number}"
    grid_images = split.val[: cfg.tracking.grid_images]
    last = out_dir / "checkpoints" / "last.pt"
    best = out_dir / "checkpoints" / "best.pt"
    params = {**tracking.flatten(config), "model.parameters": colorizer.parameter_count(model)}
    parent_run_id = trial.parent_run_id if trial is not None else None
    with reporting, tracking.start_run(cfg.tracking.uri, cfg.tracking.experiment, run_name, params, tags, run_id, parent_run_id) as run:
        if trial is not None:
            trial.attach(run.run_id)
        log.info("MLflow run %s in %s; outputs in %s", run.run_id, tracking.hide_password(cfg.tracking.uri), out_dir)
        log.info("training starts: %d train / %d val images on %s, precision %s", len(split.train), len(split.val), device, precision)
        lr_at = partial(cosine_lr, cfg.optimizer.lr, epochs=cfg.trainer.epochs) if cfg.trainer.lr_schedule == "cosine" else None
        epochs = fit(model, optimizer, loss_fn, split, cfg.trainer.epochs, settings, shuffle, start_epoch, lr_at)
        for result in epochs:
            val = result.val
            history["train_loss"].append(result.train_loss)
            history["val_loss"].append(val["loss"])
            run.metrics(
                {
                    "train_loss": result.train_loss,
                    **{f"val_{name}": value for name, value in val.items()},
                    "epoch_seconds": result.seconds,
                    "images_per_second": result.images_per_second,
                    "lr": result.lr,
                },
                step=result.epoch,
            )
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": result.epoch,
                "best_val_loss": min(best_val_loss, val["loss"]),
                "history": history,
                "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
                "config": config,
                "run_id": run.run_id,
            }
            checkpoint.save(state, last)
            if val["loss"] < best_val_loss:
                best_val_loss = val["loss"]
                checkpoint.save(state, best)
            if result.epoch in (start_epoch, cfg.trainer.epochs) or result.epoch % cfg.tracking.grid_every == 0:
                prediction = predict(model, grid_images)
                title = f"epoch {result.epoch}: input / prediction / actual"
                grid = plots.sample_grid(as_float(grid_images.gray), prediction, as_float(grid_images.rgb), title)
                run.figure(grid, f"grids/epoch_{result.epoch:04d}.png")
            log.info(
                "epoch %d/%d  train_loss %.5f  val_loss %.5f  val_psnr %.2f dB  colorfulness_ratio %.2f  %.1f s  %.0f img/s",
                result.epoch, cfg.trainer.epochs, result.train_loss, val["loss"], val["psnr"], val["colorfulness_ratio"],
                result.seconds, result.images_per_second,
            )
            objective = val[cfg.objective.metric.removeprefix("val_")]
            if trial is not None and trial.should_stop(objective, result.epoch, cfg.trainer.epochs):
                break
        if start_epoch == 1:
            # The baselines do not change with training: logged once, at step 0 beside val_*, and
            # computed after training so they do not delay its start (about 2 s for 6,000 images).
            reference = baselines(split.val)
            run.metrics({f"val_{name}": value for name, value in reference.items()}, step=0)
            log.info("val baselines: gray_copy psnr %.2f dB, lab_zero_ab psnr %.2f dB", reference["gray_copy_psnr"], reference["lab_zero_ab_psnr"])
        run.figure(plots.loss_curve(history["train_loss"], history["val_loss"]), "plots/loss_curve.png")
        run.text(OmegaConf.to_yaml(config), "config.yaml")
        for path in (last, best):
            if path.exists():
                run.artifact(path, "checkpoints")
        run.model(model.cpu(), model.inputs(split.val[:2]).cpu())
    return objective


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return cli.run(train, cfg)


if __name__ == "__main__":
    main()
