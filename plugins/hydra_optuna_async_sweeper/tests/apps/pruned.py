# An app of this suite's (not hydra-optuna-sweeper's): it reaches its trial through
# hydra_plugins.hydra_optuna_async_sweeper.trial.current() to report a curve and be pruned. With
# `record=<file>` it appends when it started and ended (seconds since the epoch), so a test can see
# how many jobs ran at once wherever the launcher ran them.
import time

import hydra
import optuna
from omegaconf import DictConfig

from hydra_plugins.hydra_optuna_async_sweeper.trial import current


@hydra.main(version_base=None, config_path="conf", config_name="config")
def curve(cfg: DictConfig) -> float:
    started = time.time()
    trial = current() if cfg.report else None
    value = 0.0
    try:
        for step in range(cfg.steps):
            value = (cfg.x - 2) ** 2 + 1 / (step + 1)  # the objective settles towards (x - 2)^2
            time.sleep(cfg.step_s)
            if trial is not None:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"at step {step}")
        return value
    finally:
        if cfg.record:
            with open(cfg.record, "a") as file:
                file.write(f"{started} {time.time()}\n")


if __name__ == "__main__":
    curve()
