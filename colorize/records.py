"""What a training run records in its MLflow run: its data at the start, each epoch's metrics and
sample grid, and at the end the baselines, the loss curve, the config, the checkpoints and the model."""

import hashlib
import logging
from pathlib import Path
from typing import Optional

from colorize import plots
from colorize.color import as_float
from colorize.data import Batches, Cropped, Images, Source, Split
from colorize.loop import Epoch
from colorize.metrics import baselines, predict
from colorize.tracking import Tracker
from colorize.wrapper import Colorizer

log = logging.getLogger(__name__)

GRIDS = "grids"  # the image key of the sample grids, one step per epoch that has one


def log_data(tracker: Tracker, source: Source, split: Split) -> None:
    """The train and val images as the run's dataset inputs (once per run, a resumed one too): named
    for their source, with a digest of their pixels, so runs on the same images share it."""
    if tracker.run_id is None or tracker.has_datasets():  # not rank 0, or a resumed run
        return
    name = Path(source.root).name if source.source == "folder" else source.source
    where = str(Path(source.root).resolve()) if source.source == "folder" else source.source
    for context, images in (("train", split.train), ("val", split.val)):
        digest = fingerprint(images)
        profile = {"images": len(images), "image_size": source.image_size, "limit": source.limit, "val_fraction": source.val_fraction, "seed": source.seed}
        if context == "train" and source.extra:
            profile["extra"] = ", ".join(str(Path(root).resolve()) for root in source.extra)
        tracker.dataset(name, where, digest, profile, context)


def fingerprint(images: Batches) -> str:
    """8 hex digits that change when the images change: of the pixels held in memory (~0.1 s per
    100 MB of uint8; CIFAR-10's train set is 150 MB), or of the file names of a streamed folder."""
    held = images.images if isinstance(images, Cropped) else images
    content = held.rgb.cpu().numpy().tobytes() if isinstance(held, Images) else "\n".join(held.files).encode()
    return hashlib.sha1(content).hexdigest()[:8]


def log_epoch(tracker: Tracker, epoch: Epoch, model: Colorizer, val: Batches, epochs: range, grid_every: int, grid_images: int) -> None:
    """Metrics at step = epoch; a grid of `grid_images` val images on the first and last epochs this
    process trains and every `grid_every` epochs (grid_images=0: none)."""
    if tracker.run_id is None:  # not rank 0 of a multi-process run
        return
    tracker.metrics(
        {
            "train_loss": epoch.train_loss,
            **{f"val_{name}": value for name, value in epoch.val.items()},
            "epoch_seconds": epoch.seconds,
            "images_per_second": epoch.images_per_second,
            "lr": epoch.lr,
        },
        step=epoch.epoch,
    )
    if grid_images and (epoch.epoch in (epochs[0], epochs[-1]) or epoch.epoch % grid_every == 0):
        shown = val.head(grid_images)
        title = f"epoch {epoch.epoch}: input / prediction / actual"
        grid = plots.sample_grid(as_float(shown.gray), predict(model, shown), as_float(shown.rgb), title)
        tracker.image(grid, GRIDS, step=epoch.epoch)
    log.info(
        "epoch %d/%d  train_loss %.5f  val_loss %.5f  val_psnr %.2f dB (per image %.2f)  colorfulness_ratio %.2f (gap %.1f)  auc %.1f (rebalanced %.1f)  %.1f s  %.0f img/s",
        epoch.epoch, epochs[-1], epoch.train_loss, epoch.val["loss"], epoch.val["psnr"], epoch.val["psnr_per_image"],
        epoch.val["colorfulness_ratio"], epoch.val["colorfulness_gap"], epoch.val["auc"], epoch.val["auc_rebalanced"], epoch.seconds, epoch.images_per_second,
    )


def log_end(
    tracker: Tracker, model: Colorizer, val: Batches, history: dict[str, list[float]], config_yaml: str, checkpoints: list[Path], register: Optional[str]
) -> None:
    if tracker.run_id is None:  # not rank 0 of a multi-process run
        return
    if not tracker.has_metric("val_gray_copy_psnr"):
        # The baselines do not change with training: logged once per run (a resumed run too), at
        # step 0 beside val_*, and after training so they do not delay its start (~2 s per 6,000 images).
        reference = baselines(val)
        tracker.metrics({f"val_{name}": value for name, value in reference.items()}, step=0)
        log.info("val baselines: gray_copy psnr %.2f dB, lab_zero_ab psnr %.2f dB", reference["gray_copy_psnr"], reference["lab_zero_ab_psnr"])
    tracker.figure(plots.loss_curve(history["train_loss"], history["val_loss"]), "plots/loss_curve.png")
    tracker.text(config_yaml, "config.yaml")
    for path in checkpoints:
        tracker.artifact(path, "checkpoints")
    tracker.model(model.cpu(), model.inputs(val.head(2)).cpu(), register)
