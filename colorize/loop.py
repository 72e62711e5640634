"""The training loop: whole data set on the device, batches by index, one host sync per epoch."""

import math
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from tqdm import tqdm

from colorize.config import ColorizeError
from colorize.data import Images, Split
from colorize.metrics import LossFn, as_float, evaluate

PROGRESS_EVERY = 20  # steps between progress-bar loss updates, each a host sync


@dataclass
class Epoch:
    epoch: int  # 1-based
    train_loss: float
    val: dict[str, float]
    seconds: float  # training part only, evaluation excluded
    images_per_second: float


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    images: Images,
    batch_size: int,
    shuffle: torch.Generator,
    progress: bool,
) -> float:
    model.train()
    n = len(images)
    order = torch.randperm(n, generator=shuffle, device=shuffle.device).to(images.gray.device)
    loss_sum = torch.zeros((), device=images.gray.device)
    bar = tqdm(range(0, n, batch_size), leave=False, disable=not progress, unit="batch")
    for step, start in enumerate(bar):
        batch = images[order[start : start + batch_size]]
        loss = loss_fn(model(as_float(batch.gray)), as_float(batch.rgb))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(batch)  # accumulate on the device, read once per epoch
        if progress and step % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")  # sync point, gated
    return (loss_sum / n).item()


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: Split,
    epochs: int,
    batch_size: int,
    shuffle: torch.Generator,
    start_epoch: int = 1,
    progress: bool = True,
) -> Iterator[Epoch]:
    """Train epochs start_epoch..epochs, yielding each one's losses and val metrics."""
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(model, optimizer, loss_fn, data.train, batch_size, shuffle, progress)
        seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise ColorizeError(f"training diverged: train loss is {train_loss} at epoch {epoch} (lower optimizer.lr)")
        yield Epoch(epoch, train_loss, evaluate(model, data.val, loss_fn), seconds, len(data.train) / seconds)
