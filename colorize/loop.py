"""The training loop: batches by index of a seeded permutation (of data held on the device, or\nstreamed from files), one host sync per epoch."""

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from tqdm import tqdm

from colorize.wrapper import Colorizer
from colorize.errors import DivergedError
from colorize.data import Batches, Split
from colorize.distributed import Ranks, mean
from colorize.metrics import LossFn, evaluate

PROGRESS_EVERY = 20  # steps between progress-bar loss updates, each a host sync


@dataclass
class Settings:
    batch_size: int
    autocast: Optional[torch.dtype] = None  # bf16 mixed precision, or None for plain fp32
    channels_last: bool = False  # NHWC inputs, faster convs on tensor cores
    progress: bool = True  # tqdm bar with the running loss


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


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine decay by epoch (1-based): base_lr for the first epoch, falling towards 0 after the last."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


def train_epoch(
    model: Colorizer,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    images: Batches,
    settings: Settings,
    shuffle: torch.Generator,
    ranks: Ranks = Ranks(),
    net: Optional[torch.nn.Module] = None,
) -> float:
    """One epoch over this process's share of a seeded permutation; `net` is model.net, or its
    DistributedDataParallel wrapper, which averages the gradients of all processes."""
    model.train()
    net = net or model.net
    device = shuffle.device
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    order = ranks.shard(torch.randperm(len(images), generator=shuffle, device=device))
    batch_size = settings.batch_size // ranks.world  # trainer.batch_size is the batch of all processes
    loss_sum, count = torch.zeros((), device=device), 0
    batches = images.batches(batch_size, order)
    bar = tqdm(batches, total=math.ceil(len(order) / batch_size), leave=False, disable=not settings.progress, unit="batch")
    for step, batch in enumerate(bar):
        inputs = model.inputs(batch).contiguous(memory_format=memory_format)
        with autocast(device, settings.autocast):
            loss = loss_fn(model.activate(net(inputs)), model.targets(batch))  # in the target space
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(batch)  # accumulate on the device, read once per epoch
        count += len(batch)
        if settings.progress and step % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")  # sync point, gated
    return mean(loss_sum, count)


def fit(
    model: Colorizer,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: Split,
    epochs: int,
    settings: Settings,
    shuffle: torch.Generator,
    start_epoch: int = 1,
    lr_at: Optional[Callable[[int], float]] = None,
    ranks: Ranks = Ranks(),
    net: Optional[torch.nn.Module] = None,
) -> Iterator[Epoch]:
    """Train epochs start_epoch..epochs, yielding each one's losses and val metrics. `lr_at(epoch)`
    sets each epoch's learning rate; a pure function of the epoch, so a resumed run follows it too."""
    for epoch in range(start_epoch, epochs + 1):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch)
        started = time.perf_counter()
        train_loss = train_epoch(model, optimizer, loss_fn, data.train, settings, shuffle, ranks, net)
        seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise DivergedError(f"training diverged: train loss is {train_loss} at epoch {epoch} (lower optimizer.lr)")
        lr = optimizer.param_groups[0]["lr"]
        yield Epoch(epoch, train_loss, evaluate(model, data.val, loss_fn, ranks=ranks), seconds, len(data.train) / seconds, lr)
