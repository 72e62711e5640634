# An app of this project's compatibility suite: it records the CUDA device its worker was handed
# (CUDA_VISIBLE_DEVICES), its CPU threads and the worker's process id on its trial.
import os
import time

import hydra
import torch
from omegaconf import DictConfig

from hydra_plugins.hydra_optuna_async_sweeper.trial import current


@hydra.main(version_base=None, config_path="conf", config_name="config")
def device(cfg: DictConfig) -> float:
    trial = current()
    trial.set_user_attr("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_user_attr("threads", torch.get_num_threads())  # the worker's share of the CPU cores
    trial.set_user_attr("pid", os.getpid())  # the basic launcher runs a trial in its worker's process
    time.sleep(cfg.step_s)
    return (cfg.x - 2) ** 2


if __name__ == "__main__":
    device()
