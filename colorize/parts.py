"""Everything a run trains with, built from the config: data, model, optimizer, loss, loop settings
(colorize.loop.Training); and the memory check before anything is allocated."""

import math
from functools import partial
from typing import Any, Mapping

import torch
from hydra.utils import instantiate
from torch.nn.parallel import DistributedDataParallel

from colorize import data, stream
from colorize.config import Target, TrainerConfig
from colorize.device import free_memory
from colorize.distributed import Ranks
from colorize.errors import ColorizeError
from colorize.loop import Settings, Training
from colorize.wrapper import colorizer, parameter_count

# Bytes per parameter while training with Adam: the weight, its gradient and two moments (fp32).
BYTES_PER_PARAMETER = 4 * 4
# Bytes per activation value: the output kept for backward and its gradient (fp32).
BYTES_PER_ACTIVATION = 4 * 2
MEMORY_SHARE = 0.9  # of what the device has free: leave room for the data and the allocator


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine decay by epoch (1-based): base_lr for the first epoch, falling towards 0 after the last."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


def training(
    source: data.Source,
    model_config: Mapping[str, Any],
    optimizer_config: Mapping[str, Any],
    loss_config: Mapping[str, Any],
    trainer: TrainerConfig,
    device: torch.device,
    ranks: Ranks = Ranks(),
) -> Training:
    check_fits(model_config, source.image_size, trainer.batch_size, device)
    with_lab = Target(model_config["target"]) == Target.lab
    shuffle = torch.Generator(device=device).manual_seed(trainer.seed)  # also draws data.augment's crops and flips
    split = (
        stream.load_split(source, device, with_lab, shuffle)
        if stream.wanted(source, device, with_lab)
        else data.load_split(source, device, with_lab, shuffle)
    )
    model = colorizer(model_config).to(device)
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if trainer.compile:
        model.net.compile()  # in place, so state_dict keys stay those of the plain model
    precision = trainer.precision if trainer.precision != "auto" else ("bf16" if device.type == "cuda" else "32")
    settings = Settings(
        trainer.batch_size, torch.bfloat16 if precision == "bf16" else None, trainer.channels_last, trainer.progress
    )
    lr_at = (
        partial(cosine_lr, optimizer_config["lr"], epochs=trainer.epochs) if trainer.lr_schedule == "cosine" else None
    )
    # Several processes: gradients are averaged through DDP's wrapper; checkpoints keep model.net's keys.
    net = (
        DistributedDataParallel(model.net, device_ids=[device.index] if device.type == "cuda" else None)
        if ranks.world > 1
        else model.net
    )
    return Training(
        data=split,
        model=model,
        optimizer=instantiate(optimizer_config)(model.parameters()),
        loss_fn=instantiate(loss_config),
        settings=settings,
        shuffle=shuffle,
        epochs=trainer.epochs,
        lr_at=lr_at,
        ranks=ranks,
        net=net,
        precision=precision,
    )


def check_fits(model_config: Mapping[str, Any], image_size: int, batch_size: int, device: torch.device) -> None:
    """Refuse, before any weight is allocated, a model whose training step would not fit in memory:
    sizes are found on the meta device, which allocates nothing."""
    with torch.device("meta"):
        model = colorizer(model_config)
        activations = 0

        def count(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            nonlocal activations
            if isinstance(output, torch.Tensor) and not list(module.children()):
                activations += output.numel()

        hooks = [module.register_forward_hook(count) for module in model.modules()]
        model(torch.zeros(batch_size, 1, image_size, image_size))
        for hook in hooks:
            hook.remove()
    parameters = parameter_count(model)
    need = parameters * BYTES_PER_PARAMETER + activations * BYTES_PER_ACTIVATION
    free = free_memory(device)
    if free is not None and need > MEMORY_SHARE * free:
        raise ColorizeError(
            f"the model does not fit: {parameters:,} parameters and about {need / 2**30:.1f} GiB to train at "
            f"trainer.batch_size={batch_size}, data.image_size={image_size}, with {free / 2**30:.1f} GiB free on {device} "
            "(lower model.width, model.depth or trainer.batch_size)"
        )
