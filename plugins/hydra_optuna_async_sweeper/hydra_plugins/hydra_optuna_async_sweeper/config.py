"""The sweeper's config schema, registered as `hydra/sweeper: optuna_async` (imported by Hydra's plugin scan).

Keys, defaults and search-space syntax follow hydra-optuna-sweeper (its Optuna 4 development branch),
so its configs carry over; `pruner`, `stop`, `enqueue`, `mlflow`, `register`, `heartbeat_interval`,
`check`, `metric_names` and the job-level keys are this plugin's own.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NoReturn, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

MOTPE_REMOVED = (
    "The 'motpe' sampler was removed in Optuna 4.0. Use 'hydra/sweeper/sampler=tpe' instead. "
    "TPESampler now handles multi-objective optimization."
)  # hydra-optuna-sweeper's words


def raise_motpe_removed(*args: Any, **kwargs: Any) -> NoReturn:
    raise ValueError(MOTPE_REMOVED)


class Direction(Enum):
    minimize = 1
    maximize = 2


# Sampler keys left null keep Optuna 5's defaults.
@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None  # with the trial number, seeds each trial's sampling (sampler.py)
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10  # random trials before TPE models the results
    n_ei_candidates: int = 24
    multivariate: Optional[bool] = None  # null: Optuna's default (multivariate TPE in Optuna 5)
    group: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None
    constant_liar: bool = (
        True  # Optuna 5's default: keeps parallel workers from sampling next to each other's running trials
    )
    constraints_func: Optional[Any] = None


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
class CmaEsSamplerConfig:
    """Needs the `cmaes` package: pip install cmaes."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    x0: Optional[dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    independent_sampler: Optional[Any] = None
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[Any] = None
    popsize: Optional[int] = None
    inc_popsize: Optional[int] = None
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    source_trials: Optional[Any] = None


@dataclass
class NSGAIISamplerConfig:
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50
    mutation: Optional[Any] = None
    mutation_prob: Optional[float] = None
    crossover: Optional[Any] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None


@dataclass
class NSGAIIISamplerConfig(NSGAIISamplerConfig):  # NSGA-II's keys, and its reference points
    _target_: str = "optuna.samplers.NSGAIIISampler"
    reference_points: Optional[Any] = None
    dividing_parameter: int = 3


@dataclass
class QMCSamplerConfig:
    """Needs scipy."""

    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = False
    independent_sampler: Optional[Any] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConfig:
    """Needs torch and scipy."""

    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    independent_sampler: Optional[Any] = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    constraints_func: Optional[Any] = None
    warn_independent_sampling: bool = True


@dataclass
class MOTPESamplerConfig:
    """Optuna 4 removed MOTPESampler; choosing it stops the sweep with one line (sampler.py)."""

    _target_: str = "hydra_plugins.hydra_optuna_async_sweeper.config.raise_motpe_removed"


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials that run to the end before any is pruned
    n_warmup_steps: int = 1  # steps (e.g. epochs) every trial runs before it can be pruned
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1  # steps (e.g. epochs)
    max_resource: Any = "auto"  # steps; auto takes the first finished trial's
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class SuccessiveHalvingPrunerConfig:
    """Hyperband's building block alone: at steps min_resource x reduction_factor^k a trial goes on
    only if it is in the best 1/reduction_factor of the trials that reached that step."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = 1  # steps before the first cut; "auto" estimates it from finished trials
    reduction_factor: int = 3


@dataclass
class MlflowConfig:
    """One MLflow parent run per study (the `mlflow` extra); the app's runs become its children if they
    name as parent trial.parent_run_id(trial). Settable key by key: hydra.sweeper.mlflow.tracking_uri=..."""

    tracking_uri: Optional[str] = None  # null: no parent run
    experiment: str = "Default"  # MLflow's own default experiment


@dataclass
class StopConfig:
    """Ends the study before n_trials (stopping.py); one objective only."""

    patience: Optional[int] = None  # finished trials in a row that do not improve on the best value
    target: Optional[float] = None  # a trial reaching this value (at least it when maximising, at most when minimising)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.hydra_optuna_async_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler and pruner stay configs: jobs in other processes rebuild the pruner
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    direction: Any = Direction.minimize  # or a list of directions: a multi-objective study
    # The objectives' names, one per direction (e.g. ${objective.metric} of the app's config): the study
    # keeps them, and the report, the Pareto plot and optimization_results.yaml show them; null: none
    metric_names: Optional[Any] = None
    # null: an in-memory study in this process, as in hydra-optuna-sweeper; any Optuna RDB URL
    # (postgresql://, mysql://, sqlite:///) persists it, and workers sharing it share the study.
    storage: Optional[str] = None
    study_name: Optional[str] = None  # null: a new study named by Optuna
    n_trials: int = (
        20  # the study's total of trials run (not those failed by a dead worker), over all workers and reruns
    )
    n_jobs: int = (
        1  # trials at once from this command: worker processes (basic launcher) or threads handing jobs to the launcher
    )
    max_failure_rate: float = 0.0  # failed trials tolerated, as a share of n_trials (all workers)
    stop: StopConfig = field(default_factory=StopConfig)  # null keys: run all n_trials
    # Settings tried first, once per study (e.g. [{optimizer.lr: 1e-3, model.width: 2}]): each a dict
    # of searched params, a param left out is sampled; a resumed study does not try them again.
    enqueue: Optional[list[dict[str, Any]]] = None
    params: Optional[dict[str, str]] = None  # key: search space, e.g. tag(log, interval(1e-4, 3e-2))
    custom_search_space: Optional[str] = None  # module.function(cfg, trial) that suggests more params
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)  # tracking_uri null: no parent run
    heartbeat_interval: int = 10  # seconds; a RUNNING trial silent for twice this is marked FAIL
    # module.function called with the job config at the space's edges before the first trial; raising stops the sweep
    check: Optional[str] = None
    # A registered model's name (needs mlflow.tracking_uri): at the end the best trial's logged model becomes its
    # next version, with the alias `champion`; null: nothing is registered
    register: Optional[str] = None
    worker: int = 0  # set by the sweeper on the extra processes it starts for n_jobs > 1
    trial_id: Optional[int] = (
        None  # set by the sweeper on each job it launches: hydra_plugins.hydra_optuna_async_sweeper.trial.current()
    )


cs = ConfigStore.instance()
PROVIDER = "hydra_optuna_async_sweeper"
cs.store(group="hydra/sweeper", name="optuna_async", node=OptunaSweeperConf, provider=PROVIDER)
for name, node in {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "nsgaiii": NSGAIIISamplerConfig,
    "qmc": QMCSamplerConfig,
    "gp": GPSamplerConfig,
    "motpe": MOTPESamplerConfig,
}.items():
    cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
for name, node in {
    "none": NopPrunerConfig,
    "median": MedianPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
}.items():
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
