"""The extra worker processes of `hydra.sweeper.n_jobs > 1` with Hydra's basic launcher (which runs
each job in its worker's own process), started the way Hydra's joblib launcher
ships a job to another process: the Hydra context, the composed config, the task function and Hydra's
global state, cloudpickled. The child re-creates this sweeper from that config and runs the same
worker loop, so it does not depend on how this process was started (a script, `python -m`, a test,
a notebook). Each child is its own interpreter: trials stay as isolated as in separate commands.

On a machine with several CUDA devices each worker gets its own, round-robin when workers outnumber
them, through CUDA_VISIBLE_DEVICES (read by CUDA, so by any app): a child's is set when it starts,
worker 0's in its own process before its first trial. An app then sees one device, `cuda:0`.
The CPU cores are shared out too: each worker gets cores / n_jobs threads (OMP_NUM_THREADS, and
torch.set_num_threads in worker 0), unless OMP_NUM_THREADS is set already. Left alone, each PyTorch
process starts one thread per core, and K of them on the same cores spin against each other (two
sweeps on 2 cores trained 10x slower than one).

    python -m hydra_plugins.hydra_optuna_async_sweeper._spawn <payload file> <worker number>
"""

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import configure_log
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PAYLOAD = ".workers.pkl"  # in the sweep dir, owner-only (it holds the config, storage URL included), removed at the end
VISIBLE = "CUDA_VISIBLE_DEVICES"
THREADS = "OMP_NUM_THREADS"


def thread_share(n_jobs: int) -> Optional[int]:
    """Each worker's CPU threads: this process's cores shared out; None when OMP_NUM_THREADS is set."""
    if THREADS in os.environ:
        return None
    return max(1, len(os.sched_getaffinity(0)) // n_jobs)


def cuda_devices() -> list[str]:
    """The CUDA devices this process may hand out: CUDA_VISIBLE_DEVICES's when set (a scheduler's
    share of the machine), else torch's count, which asks NVML and leaves CUDA uninitialised, so the
    variable still takes effect in this process afterwards. None without torch."""
    if VISIBLE in os.environ:
        return [device.strip() for device in os.environ[VISIBLE].split(",") if device.strip()]
    try:
        import torch
    except ImportError:
        return []
    return [str(index) for index in range(torch.cuda.device_count())]


def device_for(worker: int, devices: list[str]) -> Optional[str]:
    """Worker `worker`'s CUDA device, round-robin; None with fewer than two (nothing to share out)."""
    return devices[worker % len(devices)] if len(devices) > 1 else None


def pin_this_process(devices: list[str], threads: Optional[int]) -> None:
    """Worker 0's device and threads, set in this process before its first trial."""
    if threads is not None:
        os.environ[THREADS] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    device = device_for(0, devices)
    if device is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        log.warning(
            "CUDA is already initialised in this process: worker 0 keeps all %d devices, the other workers one each",
            len(devices),
        )
        return
    os.environ[VISIBLE] = device
    log.info("worker 0 on CUDA device %s", device)


def start(
    n_jobs: int,
    sweep_dir: Path,
    context: HydraContext,
    config: DictConfig,
    task: TaskFunction,
    arguments: list[str],
    devices: list[str],
    threads: Optional[int],
) -> list[subprocess.Popen]:
    """n_jobs - 1 more processes running this sweep's worker loop on the same study, each on its
    device of `devices` (device_for) when there are several, and with `threads` CPU threads."""
    payload = sweep_dir / PAYLOAD
    job = cloudpickle.dumps((context, config, task, Singleton.get_state(), arguments, sys.orig_argv, sys.argv))
    payload.touch(mode=0o600)
    payload.write_bytes(
        cloudpickle.dumps((sys.path, job))
    )  # the path first: unpickling the job imports the task's modules
    processes = []
    for worker in range(1, n_jobs):
        device = device_for(worker, devices)
        environment = {
            **os.environ,
            **({} if threads is None else {THREADS: str(threads)}),
            **({} if device is None else {VISIBLE: device}),
        }
        processes.append(subprocess.Popen([sys.executable, "-m", __name__, str(payload), str(worker)], env=environment))
    placed = "" if device_for(0, devices) is None else f", each on one of {len(devices)} CUDA devices"
    log.info("started %d more worker processes%s", len(processes), placed)
    return processes


def main(payload: str, worker: int) -> None:
    path, job = cloudpickle.loads(Path(payload).read_bytes())
    sys.path[:] = path  # the task's own imports resolve as in the first process
    context, config, task, state, arguments, sys.orig_argv, sys.argv = cloudpickle.loads(
        job
    )  # the first process's command, for the report
    Singleton.set_state(state)
    OmegaConf.set_readonly(config, False)
    config.hydra.sweeper.worker = worker
    config.hydra.sweeper.n_jobs = 1
    HydraConfig.instance().set_config(config)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweeper: Any = Plugins.instance().instantiate_sweeper(config=config, hydra_context=context, task_function=task)
    sweeper.sweep(arguments=arguments)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
