# hydra-optuna-sweeper's example/multi-objective.py (Binh and Korn), rewritten here.
from typing import Tuple

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> Tuple[float, float]:
    return 4 * cfg.x**2 + 4 * cfg.y**2, (cfg.x - 5) ** 2 + (cfg.y - 5) ** 2


if __name__ == "__main__":
    binh_and_korn()
