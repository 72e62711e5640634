"""A training run that a sweep launched: its Optuna trial, reached through the sweeper's public API
(hydra_plugins.hydra_optuna_async_sweeper.trial), so it works alike in the sweeper's own process, a
joblib worker or a SLURM job. The run reports each epoch and raises optuna.TrialPruned when pruned or
diverged; the sweeper ends the trial from that or from the returned objective."""

import contextlib
import logging
from typing import Iterator, Optional

import optuna

from colorize.errors import DivergedError
from hydra_plugins.hydra_optuna_async_sweeper import trial as sweeper_trial

log = logging.getLogger(__name__)


class SweepTrial:
    """This run's Optuna trial: per-epoch reports and the pruning decision."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.number = trial.number
        self.study_name = trial.study.study_name
        self.parent_run_id: Optional[str] = sweeper_trial.parent_run_id(trial)
        self.pruned_at: Optional[int] = None

    @property
    def tags(self) -> dict[str, str]:
        return {"optuna.study": self.study_name, "optuna.trial": str(self.number)}

    def attach(self, run_id: str) -> None:
        """This run's MLflow run, for the sweep's parent run to tag with how the trial ended."""
        self.trial.set_user_attr(sweeper_trial.RUN, run_id)

    def compare(self, metrics: list[str], baselines: dict[str, float]) -> None:
        """The gray copy's value of the objective (one), for the sweep's summary to set the best trial
        beside (the sweeper's BASELINE attribute); none for val_loss, which the gray copy has no loss of."""
        value = baselines.get(f"gray_copy_{metrics[0].removeprefix('val_')}") if len(metrics) == 1 else None
        if value is not None:
            self.trial.set_user_attr(sweeper_trial.BASELINE, {"name": "gray copy", "value": value})

    def should_stop(self, values: tuple[float, ...], epoch: int, last_epoch: int) -> bool:
        """Report this epoch's objective; True when the pruner stops the trial here. A study of
        several objectives is not told intermediate values: Optuna neither takes them nor prunes it
        (the sweeper refuses a pruner there)."""
        if len(values) > 1:
            return False
        self.trial.report(values[0], epoch)
        if epoch < last_epoch and self.trial.should_prune():  # pruning after the last epoch saves nothing
            self.pruned_at = epoch
            log.info("trial %d pruned after epoch %d (val %.3f)", self.number, epoch, values[0])
        return self.pruned_at is not None


def open_trial() -> Optional[SweepTrial]:
    """The trial of a run this project's sweeper launched, else None."""
    found = sweeper_trial.current()
    return None if found is None else SweepTrial(found)


@contextlib.contextmanager
def pruned_when_diverged(trial: Optional[SweepTrial]) -> Iterator[None]:
    """A diverged trial (NaN or inf loss) is pruned, with the reason: samplers then rank it below
    every finished trial, as they would not a failed one."""
    try:
        yield
    except DivergedError as error:
        if trial is None:
            raise
        raise optuna.TrialPruned(str(error)) from None
