"""What a training run records: in its MLflow run its data at the start, each epoch's metrics and
sample grid, and at the end the baselines, the loss curve, the config, the checkpoints and the model;
and its checkpoints after each epoch. Rank 0 of a multi-process run records; the others hold a
Recorder too, which records nothing (the one place that decides)."""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from colorize import photo, plots
from colorize.checkpoint import Checkpoints, Progress
from colorize.color import as_float
from colorize.data import Source
from colorize.images import Batches, Cropped, Images, Split
from colorize.loop import Epoch, Training
from colorize.metrics import baselines, predict
from colorize.tracking import Tracker
from colorize.wrapper import exported

log = logging.getLogger(__name__)

GRIDS = "grids"  # the image key of the sample grids, one step per epoch that has one


@dataclass(frozen=True)
class Grids:
    """Sample grids: on the first and last epochs this process trains, and every `every` epochs."""

    every: int
    images: int  # val images in each; 0: no grids
    epochs: range  # the epochs this process trains


class Recorder:
    def __init__(self, tracker: Tracker, checkpoints: Checkpoints, grids: Grids, main: bool) -> None:
        self.tracker, self.checkpoints, self.grids, self.main = tracker, checkpoints, grids, main

    def data(self, source: Source, split: Split) -> None:
        """The train and val images as the run's dataset inputs (once per run, a resumed one too): named
        for their source, with a digest of their pixels, so runs on the same images share it."""
        if not self.main or self.tracker.has_datasets():
            return
        name = Path(source.root).name if source.kind == "folder" else source.kind
        where = str(Path(source.root).resolve()) if source.kind == "folder" else source.kind
        for context, images in (("train", split.train), ("val", split.val)):
            profile = {
                "images": len(images),
                "image_size": source.image_size,
                "limit": source.limit,
                "val_fraction": source.val_fraction,
                "seed": source.seed,
            }
            if context == "train" and source.extra:
                profile["extra"] = ", ".join(str(Path(root).resolve()) for root in source.extra)
            self.tracker.dataset(name, where, fingerprint(images), profile, context)

    def epoch(self, epoch: Epoch, training: Training, progress: Progress) -> None:
        """The epoch counted in `progress`, its checkpoints, its metrics at step = epoch, its sample grid."""
        improved = progress.record(epoch.epoch, epoch.train_loss, epoch.val["loss"])
        if not self.main:
            return
        self.checkpoints.save(training, progress, improved)
        values = {"train_loss": epoch.train_loss, **{f"val_{name}": value for name, value in epoch.val.items()}}
        self.tracker.metrics(
            {**values, "epoch_seconds": epoch.seconds, "images_per_second": epoch.images_per_second, "lr": epoch.lr},
            step=epoch.epoch,
        )
        grids = self.grids
        if grids.images and (epoch.epoch in (grids.epochs[0], grids.epochs[-1]) or epoch.epoch % grids.every == 0):
            shown = training.data.val.head(grids.images)
            title = f"epoch {epoch.epoch}: input / prediction / actual"
            grid = plots.sample_grid(as_float(shown.gray), predict(training.model, shown), as_float(shown.rgb), title)
            self.tracker.image(grid, GRIDS, step=epoch.epoch)
        val = epoch.val
        log.info(
            "epoch %d/%d  train_loss %.5f  val_loss %.5f  val_psnr %.2f dB (per image %.2f)  colorfulness_ratio %.2f (gap %.1f)  auc %.1f (rebalanced %.1f)  %.1f s  %.0f img/s",
            epoch.epoch,
            grids.epochs[-1],
            epoch.train_loss,
            val["loss"],
            val["psnr"],
            val["psnr_per_image"],
            val["colorfulness_ratio"],
            val["colorfulness_gap"],
            val["auc"],
            val["auc_rebalanced"],
            epoch.seconds,
            epoch.images_per_second,
        )

    def end(
        self, training: Training, progress: Progress, config_yaml: str, register: Optional[str]
    ) -> dict[str, float]:
        """The end of a run: the baselines (returned; {} on other ranks), the loss curve, the config,
        the checkpoints, and the model that colours photos of any size (last: exporting takes seconds)."""
        if not self.main:
            return {}
        model, val = training.model, training.data.val
        # The baselines do not change with training: computed after it, so they do not delay its start
        # (~2 s per 6,000 images), and logged once per run (a resumed run too), at step 0 beside val_*.
        reference = baselines(val)
        if not self.tracker.has_metric("val_gray_copy_psnr"):
            self.tracker.metrics({f"val_{name}": value for name, value in reference.items()}, step=0)
        self.tracker.figure(
            plots.loss_curve(progress.history["train_loss"], progress.history["val_loss"]), "plots/loss_curve.png"
        )
        self.tracker.text(config_yaml, "config.yaml")
        for path in self.checkpoints.written():
            self.tracker.artifact(path, "checkpoints")
        size = val.head(1).rgb.shape[-1]
        log.info("logging the model to MLflow: exported for photos of any size (a few seconds)")
        # An example photo of neither the view's size nor a square: export gives every size its own symbol.
        fixed = model.fixed_size is not None
        example = photo.prepare(
            np.zeros((2, 2 * size + 3, 3 * size + 5, 3), np.uint8), size, fixed, "trained", torch.device("cpu")
        )
        self.tracker.model(
            exported(model.cpu(), example.pixels, example.view),
            {"size": size, "fixed": fixed, "resolution": "trained"},
            register,
        )
        return reference


def fingerprint(images: Batches) -> str:
    """8 hex digits that change when the images change: of the pixels held in memory (~0.1 s per
    100 MB of uint8; CIFAR-10's train set is 150 MB), or of the file names of a streamed folder."""
    held = images.images if isinstance(images, Cropped) else images  # a Cropped holds Images or a Stream
    content = held.rgb.cpu().numpy().tobytes() if isinstance(held, Images) else "\n".join(held.files).encode()
    return hashlib.sha1(content).hexdigest()[:8]
