"""The sweeper's config schema, registered as `hydra/sweeper: colorize_optuna` (imported by Hydra's plugin scan).

Keys and search-space syntax follow hydra-optuna-sweeper, so its configs carry over; `pruner`,
`heartbeat_interval`, `worker`, `check` and `register` are new.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Direction(Enum):
    minimize = 1
    maximize = 2


@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None  # with the trial number, seeds each trial's sampling (sampler.py)
    n_startup_trials: int = 10  # random trials before TPE models the results
    n_ei_candidates: int = 24
    multivariate: Optional[bool] = None  # null: Optuna's default (multivariate TPE in Optuna 5)
    constant_liar: bool = True  # Optuna 5's default: keeps parallel workers from sampling next to each other's running trials


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class GridSamplerConfig:
    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True  # the grid is made from hydra.sweeper.params: choice(...) and range(...)
    seed: Optional[int] = None  # the order the grid is visited in


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials that run to the end before any is pruned
    n_warmup_steps: int = 1  # epochs every trial trains before it can be pruned: the first ranks trials poorly
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1  # epochs
    max_resource: Any = "auto"  # epochs; auto takes the first finished trial's
    reduction_factor: int = 3


@dataclass
class SuccessiveHalvingPrunerConfig:
    """Hyperband's building block alone: at epochs min_resource x reduction_factor^k a trial goes on
    only if it is in the best 1/reduction_factor of the trials that reached that epoch."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = 1  # epochs before the first cut; "auto" estimates it from finished trials
    reduction_factor: int = 3


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.colorize_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler and pruner stay configs: jobs in other processes rebuild the pruner
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    direction: Optional[Direction] = None  # null: the task's objective.direction if it has one, else minimize
    # Any Optuna RDB URL (postgresql://, mysql://, sqlite:///); workers sharing it share the study.
    storage: str = "sqlite:///${paths.root_dir}/sweeps/optuna.db"
    study_name: Optional[str] = None  # null: the sweep's name (sweep=<name>)
    n_trials: int = 20  # the study's total of finished (complete or pruned) trials, over all workers and reruns
    n_jobs: int = 1  # worker processes on this machine, each running one trial at a time
    max_failure_rate: float = 0.0  # the sweep stops once the study's failed trials (all workers) exceed this share of n_trials
    params: Optional[dict[str, str]] = None  # key: search space, e.g. tag(log, interval(1e-4, 3e-2))
    heartbeat_interval: int = 10  # seconds; a RUNNING trial silent for twice this is marked FAIL
    worker: int = 0  # set by the sweeper on the extra processes it starts for n_jobs > 1
    # module.function called with the job config at the space's edges before the first trial; raising stops the sweep
    check: Optional[str] = None
    # A registered model's name: at the end the best trial's logged model becomes its next version,
    # with the alias `champion`; null: nothing is registered
    register: Optional[str] = None


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="colorize_optuna", node=OptunaSweeperConf, provider="colorize")
cs.store(group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConfig, provider="colorize")
cs.store(group="hydra/sweeper/sampler", name="random", node=RandomSamplerConfig, provider="colorize")
cs.store(group="hydra/sweeper/sampler", name="grid", node=GridSamplerConfig, provider="colorize")
cs.store(group="hydra/sweeper/pruner", name="none", node=NopPrunerConfig, provider="colorize")
cs.store(group="hydra/sweeper/pruner", name="median", node=MedianPrunerConfig, provider="colorize")
cs.store(group="hydra/sweeper/pruner", name="hyperband", node=HyperbandPrunerConfig, provider="colorize")
cs.store(group="hydra/sweeper/pruner", name="successive_halving", node=SuccessiveHalvingPrunerConfig, provider="colorize")
