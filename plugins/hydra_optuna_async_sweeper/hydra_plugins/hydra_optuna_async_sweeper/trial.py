"""What a job launched by this sweeper calls to reach its Optuna trial: the one API an app needs for
pruning. An app that never calls it is treated as hydra-optuna-sweeper treats it: the task's return
value is the objective (a tuple for several).

    from hydra_plugins.hydra_optuna_async_sweeper.trial import current

    trial = current()          # None outside a sweep of this sweeper
    if trial is not None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"at step {step}")   # recorded PRUNED, the message as its reason

The sweeper ends the trial from what the job returns or raises (COMPLETE with the returned value,
PRUNED on optuna.TrialPruned, FAIL with the exception's first line), so a job never ends it itself.
With hydra.sweeper.mlflow set, `parent_run_id(trial)` is the sweep's MLflow parent run, for the job's
own run to name as its parent; storing that run's id as the trial's user attribute RUN lets the
parent run tag it with the trial's state and the Pareto front.

The sweeper passes the trial's id as `hydra.sweeper.trial_id` (and the study's name as
`hydra.sweeper.study_name`) on each job's overrides; the job reads them, and the storage URL, from its
own Hydra config, so this works alike in the sweeper's process (basic launcher) and in other processes
or machines (joblib, submitit), with no key in the app's config. An in-memory study (storage null)
is reachable only from the sweeper's own process: the sweeper refuses a pruner with a launcher that
runs jobs elsewhere, and here a job in another process is told so in one line.
"""

import os
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError

if TYPE_CHECKING:  # optuna is imported by current(), not when Hydra's plugin scan imports this module
    import optuna

RUN = (
    "mlflow_run_id"  # trial user attribute: the job's own MLflow run, for the parent run to tag (hydra.sweeper.mlflow)
)
BASELINE = "baseline"  # trial user attribute: {"name": ..., "value": ...}, what the objective should beat; the summary compares

__all__ = ["current", "parent_run_id", "RUN", "BASELINE"]

# In-memory studies of this process by name, with the id of the process that holds them: a copy that
# reached another process (pickled with a job) is never used, or its reports would go nowhere.
MEMORY: dict[str, tuple[int, Any]] = {}


def current() -> Optional["optuna.Trial"]:
    """This job's Optuna trial, its study with the sweep's pruner; None when this sweeper did not launch it."""
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if OmegaConf.select(sweeper, "trial_id") is None:
        return None
    import optuna

    from hydra_plugins.hydra_optuna_async_sweeper._study import PRUNER, open_storage

    name = sweeper.study_name
    if sweeper.storage is None:
        held = MEMORY.get(name)
        if held is None or held[0] != os.getpid():
            raise SweeperError(
                f"study {name} is held in memory by the sweeper's process (hydra.sweeper.storage=null) and this job runs in another: "
                "set hydra.sweeper.storage (e.g. sqlite:///optuna.db) for the job to reach its trial"
            )
        storage = held[1]
    else:
        storage = open_storage(sweeper.storage)
    study = optuna.load_study(study_name=name, storage=storage)
    pruner = study.user_attrs.get(PRUNER)
    if pruner:
        study.pruner = instantiate(pruner)
    return optuna.trial.Trial(study, sweeper.trial_id)


def parent_run_id(trial: "optuna.Trial") -> Optional[str]:
    """The sweep's MLflow parent run (hydra.sweeper.mlflow), None without one."""
    from hydra_plugins.hydra_optuna_async_sweeper._study import PARENT_RUN

    return trial.study.user_attrs.get(PARENT_RUN)
