"""One run over several processes, started by torchrun (or SLURM through Hydra's submitit launcher):
which process this is, and the few collective operations the loop and the metrics need."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from colorize.errors import ColorizeError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0  # this process among all of the run's
    world: int = 1  # how many processes train together
    local: int = 0  # this process among those on its machine: its GPU

    @property
    def main(self) -> bool:
        """Rank 0 logs to MLflow and writes checkpoints and grids; the others only train."""
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This process's share of an order every process drew alike: every world-th index."""
        return order[self.rank :: self.world]


def setup(batch_size: int) -> Ranks:
    """The process group torchrun describes in its environment (RANK, WORLD_SIZE, LOCAL_RANK), or a
    single process; gloo on CPUs, NCCL on GPUs (each process on its LOCAL_RANK's GPU). In a job of
    Hydra's submitit launcher with several tasks, submitit turns SLURM's variables into those."""
    # Only submitit's jobs: its environment refuses to load elsewhere. And the tasks of this step
    # (srun's), not SLURM_NTASKS, the allocation's: a batch script of `sbatch -n 2` is one process.
    if (
        "RANK" not in os.environ
        and os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
        and int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1
    ):
        from submitit.helpers import TorchDistributedEnvironment  # the distributed extra

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    if batch_size % ranks.world:
        raise ColorizeError(
            f"trainer.batch_size={batch_size} is the batch of all {ranks.world} processes together: make it a multiple of {ranks.world}"
        )
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(ranks.local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return ranks


def device_for(ranks: Ranks, name: str) -> str:
    """Each process of a multi-GPU run on its own GPU, whatever trainer.device says."""
    return f"cuda:{ranks.local}" if ranks.world > 1 and torch.cuda.is_available() and name in ("auto", "cuda") else name


def total(value: torch.Tensor) -> torch.Tensor:
    """The sum over every process (the value itself in a single process)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
    return value


def mean(value_sum: torch.Tensor, count: int) -> float:
    """value_sum / count over every process (of this one alone in a single process), read back once."""
    summed, counted = total(torch.stack([value_sum, torch.tensor(float(count), device=value_sum.device)]))
    return (summed / counted).item()


def gather(values: torch.Tensor) -> torch.Tensor:
    """Every process's per-image values, one after the other (shards may differ in length by one)."""
    if not dist.is_initialized():
        return values
    parts: list[torch.Tensor] = [torch.empty(0)] * dist.get_world_size()
    dist.all_gather_object(parts, values.cpu())
    return torch.cat(parts).to(values.device)


def agree(decision: bool) -> bool:
    """Rank 0's decision, in every process (a pruned trial stops all of them at the same epoch)."""
    if not dist.is_initialized():
        return decision
    flag = [decision]
    dist.broadcast_object_list(flag, src=0)
    return bool(flag[0])
