"""The extra worker processes of `hydra.sweeper.n_jobs > 1`, started the way Hydra's joblib launcher
ships a job to another process: the Hydra context, the composed config, the task function and Hydra's
global state, cloudpickled. The child re-creates this sweeper from that config and runs the same
worker loop, so it does not depend on how this process was started (a script, `python -m`, a test,
a notebook). Each child is its own interpreter: trials stay as isolated as in separate commands.

    python -m hydra_plugins.colorize_sweeper.spawn <payload file> <worker number>
"""

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import configure_log
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PAYLOAD = ".workers.pkl"  # in the sweep dir, owner-only (it holds the config, storage URL included), removed at the end


def start(n_jobs: int, sweep_dir: Path, context: HydraContext, config: DictConfig, task: TaskFunction, arguments: list[str]) -> list[subprocess.Popen]:
    """n_jobs - 1 more processes running this sweep's worker loop on the same study."""
    payload = sweep_dir / PAYLOAD
    job = cloudpickle.dumps((context, config, task, Singleton.get_state(), arguments, sys.orig_argv))
    payload.touch(mode=0o600)
    payload.write_bytes(cloudpickle.dumps((sys.path, job)))  # the path first: unpickling the job imports the task's modules
    processes = [subprocess.Popen([sys.executable, "-m", __name__, str(payload), str(k)]) for k in range(1, n_jobs)]
    log.info("started %d more worker processes", len(processes))
    return processes


def main(payload: str, worker: int) -> None:
    path, job = cloudpickle.loads(Path(payload).read_bytes())
    sys.path[:] = path  # the task's own imports resolve as in the first process
    context, config, task, state, arguments, sys.orig_argv = cloudpickle.loads(job)  # orig_argv: the report's command
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
