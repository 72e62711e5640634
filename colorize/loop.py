"""The training loop: batches by index of a seeded permutation (of data held on the device, or\nstreamed from files), one host sync per epoch."""

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from tqdm import tqdm

from colorize.distributed import Ranks, mean
from colorize.errors import DivergedError
from colorize.images import Split
from colorize.metrics import LossFn, evaluate
from colorize.wrapper import Colorizer

PROGRESS_EVERY = 20  # steps between progress-bar loss updates, each a host sync


@dataclass
class Settings:
    batch_size: int
    autocast: Optional[torch.dtype] = None  # bf16 mixed precision, or None for plain fp32
    channels_last: bool = False  # NHWC inputs, faster convs on tensor cores
    progress: bool = True  # tqdm bar with the running loss


@dataclass
class Training:
    """Everything a run trains with (colorize.parts builds it from the config): what the loop, the
    checkpoints and the records take, as one."""

    data: Split
    model: Colorizer
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    settings: Settings
    shuffle: torch.Generator  # the order of each epoch's batches (and data.augment's crops); saved in checkpoints
    epochs: int  # the last epoch to train
    lr_at: Optional[Callable[[int], float]] = None  # the lr of each epoch, or None for a constant lr
    ranks: Ranks = Ranks()  # the processes training together (torchrun): rank 0 alone records
    net: Optional[torch.nn.Module] = None  # what the loop calls: model.net, or its DistributedDataParallel wrapper
    precision: str = "32"  # 32 or bf16, after `auto` is resolved

    def __post_init__(self) -> None:
        self.net = self.net or self.model.net


@dataclass
class Epoch:
    epoch: int  # 1-based
    train_loss: float
    val: dict[str, float]
    seconds: float  # training part only, evaluation excluded
    images_per_second: float
    lr: float  # the learning rate this epoch trained with


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_epoch(training: Training) -> float:
    """One epoch over this process's share of a seeded permutation of the train part; several
    processes average their gradients through training.net, a DistributedDataParallel wrapper."""
    model, settings, ranks = training.model, training.settings, training.ranks
    model.train()
    device = training.shuffle.device
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    images = training.data.train
    order = ranks.shard(torch.randperm(len(images), generator=training.shuffle, device=device))
    batch_size = settings.batch_size // ranks.world  # trainer.batch_size is the batch of all processes
    loss_sum, count = torch.zeros((), device=device), 0
    bar = tqdm(
        images.batches(batch_size, order),
        total=math.ceil(len(order) / batch_size),
        leave=False,
        disable=not settings.progress,
        unit="batch",
    )
    for step, batch in enumerate(bar):
        inputs = model.inputs(batch).contiguous(memory_format=memory_format)
        with autocast(device, settings.autocast):
            loss = training.loss_fn(model.activate(training.net(inputs)), model.targets(batch))  # in the target space
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        loss_sum += loss.detach() * len(batch)  # accumulate on the device, read once per epoch
        count += len(batch)
        if settings.progress and step % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")  # sync point, gated
    return mean(loss_sum, count)


def fit(training: Training, start_epoch: int = 1) -> Iterator[Epoch]:
    """Train epochs start_epoch..training.epochs, yielding each one's losses and val metrics. The lr
    of each epoch, training.lr_at(epoch), is a pure function of the epoch: a resumed run follows it too."""
    for epoch in range(start_epoch, training.epochs + 1):
        if training.lr_at is not None:
            for group in training.optimizer.param_groups:
                group["lr"] = training.lr_at(epoch)
        started = time.perf_counter()
        train_loss = train_epoch(training)
        seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise DivergedError(f"training diverged: train loss is {train_loss} at epoch {epoch} (lower optimizer.lr)")
        lr = training.optimizer.param_groups[0]["lr"]
        val = evaluate(training.model, training.data.val, training.loss_fn, ranks=training.ranks)
        yield Epoch(epoch, train_loss, val, seconds, len(training.data.train) / seconds, lr)
