"""What a job launched by this sweeper calls to reach its Optuna trial: the one API an app uses for
pruning (report, should_prune) or to settle the trial itself. An app that never calls it is treated
as hydra-optuna-sweeper treats it: the task's return value is the objective.

    from hydra_plugins.colorize_sweeper.trial import current

    trial = current()          # None outside a sweep
    if trial is not None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()   # the sweeper records the trial PRUNED

The sweeper passes the trial's id as `hydra.sweeper.trial_id` (and the study's name as
`hydra.sweeper.study_name`) on each job's overrides; the job reads them, and the storage URL, from its
own Hydra config, so this works alike in the sweeper's process (basic launcher) and in other processes
or machines (joblib, submitit), with no key in the app's config. An in-memory study (storage null)
is reachable only from the sweeper's own process.
"""

from typing import Optional

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from colorize.errors import ColorizeError

PRUNER = "pruner"  # study user attribute: the pruner's _target_ config, so jobs in other processes build the same one
MEMORY: dict[str, optuna.storages.BaseStorage] = {}  # in-memory studies of this process, by study name


def current() -> Optional[optuna.Trial]:
    """This job's Optuna trial, its study with the sweep's pruner; None when no sweep of this plugin launched it."""
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if OmegaConf.select(sweeper, "trial_id") is None:
        return None
    name = sweeper.study_name
    if sweeper.storage is None:
        if name not in MEMORY:
            raise ColorizeError(
                f"study {name} is in memory in the sweeper's process (hydra.sweeper.storage=null): "
                "set a storage URL to reach the trial from this launcher's processes"
            )
        storage: optuna.storages.BaseStorage = MEMORY[name]
    else:
        from colorize.sweeping import open_storage

        storage = open_storage(sweeper.storage)
    study = optuna.load_study(study_name=name, storage=storage)
    pruner = study.user_attrs.get(PRUNER)
    if pruner:
        study.pruner = instantiate(pruner)
    return optuna.trial.Trial(study, sweeper.trial_id)
