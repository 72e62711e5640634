# An app of this project's compatibility suite (not hydra-optuna-sweeper's): it reaches its trial
# through hydra_plugins.colorize_sweeper.trial.current() to report a curve and be pruned.
import time

import hydra
import optuna
from omegaconf import DictConfig

from hydra_plugins.colorize_sweeper.trial import current


@hydra.main(version_base=None, config_path="conf", config_name="config")
def curve(cfg: DictConfig) -> float:
    trial = current()
    value = 0.0
    for step in range(cfg.steps):
        value = (cfg.x - 2) ** 2 + 1 / (step + 1)  # the objective settles towards (x - 2)^2
        time.sleep(cfg.step_s)
        if trial is not None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"at step {step}")
    return value


if __name__ == "__main__":
    curve()
