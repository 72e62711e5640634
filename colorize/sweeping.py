"""Optuna from inside a training run that a sweep launched, and the storage and state changes the
sweeper shares with it.

The run reaches its trial through the sweeper's API (hydra_plugins.colorize_sweeper.trial.current),
through the study's storage, so this works alike in the sweeper's own process, a joblib worker or
another machine.
"""

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from colorize.errors import ColorizeError, DivergedError, one_line
from colorize.secrets import mask

log = logging.getLogger(__name__)

# Study user attributes, shared by every worker of a sweep.
PARENT_RUN = "mlflow_parent_run_id"  # the sweep's one MLflow parent run
# Trial user attributes.
RUN = "mlflow_run_id"
REASON = "reason"  # why a trial was pruned or failed, one line
STOPPED = "worker_stopped"  # True on a trial that failed because its worker stopped (killed, Ctrl-C), not by its own error
SQLITE_TIMEOUT_S = 60  # concurrent workers wait this long for SQLite's single write lock
STORAGE_ATTEMPTS = 4  # connection tries, 1, 2 and 3 s apart


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage. Heartbeats are the sweeper's (colorize_sweeper.workers), not Optuna's,
    whose check skips a trial that never beat."""
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    for attempt in range(STORAGE_ATTEMPTS):
        time.sleep(attempt)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.DBAPIError as error:
            failure = error  # workers creating a new database's tables at once collide; a server restarts
        except Exception as error:  # a bad URL, a missing driver: trying again will not help
            failure = error
            break
    raise ColorizeError(f"Optuna storage {mask(url)}: {mask(one_line(failure))}")


def settle(
    storage: optuna.storages.BaseStorage,
    trial_id: int,
    state: TrialState,
    value: Union[None, float, Sequence[float]] = None,
    reason: Optional[str] = None,
    stopped: bool = False,
) -> bool:
    """The one place a sweep's trial changes state, from any process: COMPLETE with its value (a
    sequence of values for a study of several objectives),
    PRUNED (with its last reported value), FAIL with a one-line reason (stopped: its worker stopped,
    not the trial), or WAITING (back to the queue for a later ask). False when another worker
    settled it first: a finished trial is never changed."""
    frozen = storage.get_trial(trial_id)
    if frozen.state.is_finished():
        return False
    if state == TrialState.PRUNED and value is None and frozen.last_step is not None:
        value = frozen.intermediate_values[frozen.last_step]  # samplers rank a pruned trial by it
    values = None if value is None else [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if values is not None and not all(math.isfinite(v) for v in values):
        if state == TrialState.COMPLETE:
            state, reason = TrialState.FAIL, f"the objective is {value}, not finite"
        values = None
    if state != TrialState.COMPLETE and state != TrialState.PRUNED:
        values = None  # Optuna keeps values only for these
    try:
        if reason:
            storage.set_trial_user_attr(trial_id, REASON, reason)
        if stopped:
            storage.set_trial_user_attr(trial_id, STOPPED, True)
        storage.set_trial_state_values(trial_id, state, values)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    log.debug("trial %d -> %s %s", frozen.number, state.name, reason or "")
    return True


class SweepTrial:
    """This run's Optuna trial: per-epoch reports, the pruning decision, and how it ended."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.study = trial.study
        self.storage = trial.study._storage
        self.number = self.trial.number
        self.parent_run_id: Optional[str] = self.study.user_attrs.get(PARENT_RUN)
        self.run_id: Optional[str] = None
        self.values: Optional[tuple[float, ...]] = None
        self.pruned_at: Optional[int] = None

    @property
    def tags(self) -> dict[str, str]:
        return {"optuna.study": self.study.study_name, "optuna.trial": str(self.number)}

    def attach(self, run_id: str) -> None:
        self.run_id = run_id
        self.trial.set_user_attr(RUN, run_id)

    def should_stop(self, values: tuple[float, ...], epoch: int, last_epoch: int) -> bool:
        """Report this epoch's objectives; True when the pruner stops the trial here. A study of
        several objectives is only told the last values: Optuna neither takes their intermediate
        values nor prunes it (the sweeper refuses a pruner there)."""
        self.values = values
        if len(values) > 1:
            return False
        self.trial.report(values[0], epoch)
        if epoch < last_epoch and self.trial.should_prune():  # pruning after the last epoch saves nothing
            self.pruned_at = epoch
            log.info("trial %d pruned after epoch %d (val %.3f)", self.number, epoch, values[0])
        return self.pruned_at is not None

    def finish(self, state: TrialState, reason: Optional[str], stopped: bool = False) -> None:
        if state == TrialState.COMPLETE and self.values is None:
            state, reason = TrialState.FAIL, "no epoch reported a value"
        settle(self.storage, self.trial._trial_id, state, self.values if state == TrialState.COMPLETE else None, reason, stopped)
        if self.run_id:
            from colorize import tracking

            tracking.tag_run(self.run_id, {"optuna.state": state.name, "optuna.reason": reason or ""})


@contextmanager
def reporting(trial: Optional[SweepTrial]) -> Iterator[None]:
    """Tell Optuna how the run ended: COMPLETE with its last value, PRUNED (by the pruner, or on a
    diverged loss, which samplers then rank below every finished trial), or FAIL with the reason."""
    if trial is None:
        yield
        return
    state, reason, stopped = TrialState.FAIL, "interrupted", True  # Ctrl-C, SIGTERM: not the trial's fault
    try:
        yield
        if trial.pruned_at is not None:
            state, reason = TrialState.PRUNED, f"pruned after epoch {trial.pruned_at}"
        else:
            state, reason = TrialState.COMPLETE, None
        stopped = False
    except DivergedError as error:
        state, reason, stopped = TrialState.PRUNED, str(error), False
        raise
    except Exception as error:
        reason, stopped = one_line(error), False
        raise
    finally:
        trial.finish(state, reason, stopped)
