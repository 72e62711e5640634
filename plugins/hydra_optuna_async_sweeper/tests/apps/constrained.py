# An app of this suite's: the sphere of x, with the constraint x >= 1 (feasible when constraints(trial) <= 0).
import hydra
from omegaconf import DictConfig
from optuna.trial import FrozenTrial


def constraints(trial: FrozenTrial) -> list[float]:
    return [1 - trial.params["x"]]


@hydra.main(version_base=None, config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    return cfg.x**2


if __name__ == "__main__":
    sphere()
