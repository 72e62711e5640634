# hydra-optuna-sweeper's example/custom-search-space-objective.py, rewritten here.
import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(config_path="custom-search-space", config_name="config")
def multi_dimensional_sphere(cfg: DictConfig) -> float:
    return cfg.w**2 + cfg.x**2 + cfg.y**2 + cfg.z**2


def configure(cfg: DictConfig, trial: Trial) -> None:
    x_value = trial.params["x"]
    trial.suggest_float("z", x_value - cfg.max_z_difference_from_x, x_value + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    multi_dimensional_sphere()
