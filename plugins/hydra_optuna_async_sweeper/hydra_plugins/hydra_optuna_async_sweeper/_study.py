"""The study every worker shares, and the rules they keep in it: its storage, how a trial ends (the
one place a trial changes state), which trials use up the budget, claims that exactly one worker
wins, heartbeats and the stale-trial rule. The storage is the only coordination between workers: the
n_jobs processes or threads of one command, other commands, other machines.

A worker beats for its running trial from the moment it asks for it; any worker fails a RUNNING trial
that started more than twice heartbeat_interval ago and has not beaten within that time (its worker
died, before or after its first beat), so a dead worker's trial is replaced and no one waits forever.
"""

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages._rdb import models
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError, mask, one_line

log = logging.getLogger(__name__)

# Study user attributes.
PARENT_RUN = "mlflow_parent_run_id"  # the sweep's one MLflow parent run, for the jobs' runs to name as parent
PRUNER = "pruner"  # the pruner's config, so jobs in other processes build the same one
# Trial user attributes.
REASON = "reason"  # why a trial was pruned or failed, one line
STOPPED = "worker_stopped"  # True on a trial that failed because its worker or job was lost, not by its own error
# Study system attributes, each claimed by exactly one worker (claim).
SYSTEM = "async_sweeper."
REQUEUED = SYSTEM + "requeued"  # trial system attribute: how often the trial went back to WAITING
SQLITE_TIMEOUT_S = 60  # concurrent workers wait this long for SQLite's single write lock
STORAGE_ATTEMPTS = 4  # connection tries, 1, 2 and 3 s apart
Values = Union[None, float, Sequence[float]]


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage. Heartbeats are this sweeper's, not Optuna's, whose check skips a trial
    that never beat."""
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
    hint = ""
    if mask(url) != url:
        hint = " (given in clear, the password is written to each job's .hydra/hydra.yaml: 'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' leaves no trace of it)"
    raise SweeperError(f"Optuna storage {mask(url)}: {mask(one_line(failure))}{hint}")


def finite(values: Values) -> Optional[list[float]]:
    """The objective values as floats, None when there are none or one is not finite."""
    if values is None:
        return None
    floats = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    return floats if all(math.isfinite(v) for v in floats) else None


def settle(
    storage: optuna.storages.BaseStorage,
    trial_id: int,
    state: TrialState,
    reason: Optional[str] = None,
    stopped: bool = False,
) -> bool:
    """A trial's end from any process, without the sampler: FAIL with a one-line reason (stopped: its
    worker or job was lost, not the trial), or WAITING (back to the queue for a later ask). False
    when another worker ended it first: a finished trial is never changed."""
    try:
        frozen = storage.get_trial(trial_id)
        if frozen.state.is_finished():
            return False
        if state == TrialState.WAITING:  # a new asking of it, for claim_asked
            storage.set_trial_system_attr(trial_id, REQUEUED, frozen.system_attrs.get(REQUEUED, 0) + 1)
        if reason:
            storage.set_trial_user_attr(trial_id, REASON, reason)
        if stopped:
            storage.set_trial_user_attr(trial_id, STOPPED, True)
        storage.set_trial_state_values(trial_id, state, None)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, values: Values = None, reason: Optional[str] = None
) -> tuple[TrialState, Optional[list[float]]]:
    """The end of a trial its worker launched, through Optuna's own tell: the sampler's after_trial
    runs (a sampler's constraints_func is recorded there) before the state is stored; a PRUNED trial
    keeps its last reported value. A value that is not finite is a FAIL. A trial another worker
    ended first (found stale) is left as it is. Its state and values, as stored."""
    floats = finite(values)
    if state == TrialState.COMPLETE and floats is None:
        state, reason = TrialState.FAIL, reason or f"the objective is {values}, not a finite number"
    try:
        if reason:
            study._storage.set_trial_user_attr(trial._trial_id, REASON, reason)
        # Study.tell less its final read of the trial (a round trip a trial): Optuna's own tell.
        told, stored, _ = _tell_with_warning(
            study, trial, floats if state == TrialState.COMPLETE else None, state, skip_if_finished=True
        )
        return told, stored
    except optuna.exceptions.UpdateFinishedTrialError:
        frozen = study._storage.get_trial(trial._trial_id)
        return frozen.state, frozen.values
    except RuntimeError as error:  # the grid sampler stops the study when its grid is done: nothing to stop here
        if "Study.stop" not in str(error):
            raise
        frozen = study._storage.get_trial(trial._trial_id)
        return frozen.state, frozen.values


def counted(trial: FrozenTrial) -> bool:
    """A trial that uses up the budget: COMPLETE, PRUNED, or FAIL by its own error."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(STOPPED)
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Tally:
    run: int  # COMPLETE, PRUNED, or FAIL by its own error: what uses up the budget
    running: int
    failed: int  # FAIL by its own error: what uses up the failure budget


def tally(study: optuna.Study, below: Optional[int] = None) -> Tally:
    """The study's trials counted for the budget (those numbered below `below`, if given). On an RDB
    storage one query, not the trials themselves (Optuna reads a trial in six): each worker counts
    twice a trial."""
    database = rdb(study._storage)
    if database is None:
        trials = [t for t in study.get_trials(deepcopy=False) if below is None or t.number < below]
        stopped = [t.state == TrialState.FAIL and bool(t.user_attrs.get(STOPPED)) for t in trials]
        by_state = Counter((t.state.name, lost) for t, lost in zip(trials, stopped))
    else:
        trials, attrs = models.TrialModel.__table__.c, models.TrialUserAttributeModel.__table__.c
        lost = sqlalchemy.exists().where(attrs.trial_id == trials.trial_id, attrs.key == STOPPED)
        query = sqlalchemy.select(trials.state, lost.label("lost"), sqlalchemy.func.count()).where(
            trials.study_id == study._study_id
        )
        if below is not None:
            query = query.where(trials.number < below)
        with database.engine.connect() as connection:
            rows = connection.execute(query.group_by(trials.state, "lost")).all()
        by_state = Counter(
            {(state.name if hasattr(state, "name") else str(state), bool(lost)): n for state, lost, n in rows}
        )
    failed = by_state[("FAIL", False)]
    run = by_state[("COMPLETE", False)] + by_state[("PRUNED", False)] + failed
    return Tally(run=run, running=by_state[("RUNNING", False)], failed=failed)


_MEMORY_CLAIMS = threading.Lock()  # in memory, the worker threads of this process are the only claimants


def claim(storage: optuna.storages.BaseStorage, study_id: int, key: str) -> bool:
    """True for exactly one caller per key, in any process or thread: the study's system attributes
    are unique per key, so of the workers inserting the same key one succeeds (Optuna's own setter
    upserts)."""
    key = SYSTEM + key
    if not isinstance(storage, optuna.storages.RDBStorage):
        with _MEMORY_CLAIMS:
            if key in storage.get_study_system_attrs(study_id):
                return False
            storage.set_study_system_attr(study_id, key, True)
            return True
    table = models.StudySystemAttributeModel.__table__
    try:
        with storage.engine.begin() as connection:
            connection.execute(table.insert().values(study_id=study_id, key=key, value_json="true"))
    except sqlalchemy.exc.IntegrityError:
        return False
    return True


def claim_asked(study: optuna.Study, trial: optuna.Trial) -> bool:
    """True for the one worker a WAITING trial (enqueued, or put back) was handed to. Optuna's ask
    takes a WAITING trial by reading its state and then writing RUNNING, which on SQLite two workers
    can both do at once (no row lock): both would run it. Keyed by how often it was put back, so a
    trial asked again later is claimed anew."""
    attrs = trial._cached_frozen_trial.system_attrs  # as the ask read it: no extra query
    if "fixed_params" not in attrs and REQUEUED not in attrs:
        return True  # made by this ask, never WAITING: no other worker can hold it
    return claim(study._storage, study._study_id, f"asked.{trial._trial_id}.{attrs.get(REQUEUED, 0)}")


def rdb(storage: optuna.storages.BaseStorage) -> Optional[optuna.storages.RDBStorage]:
    """The RDB storage behind a study's storage (Optuna wraps it in a cache), or None in memory."""
    inner = getattr(storage, "_backend", storage)
    return inner if isinstance(inner, optuna.storages.RDBStorage) else None


def fail_stale(
    storage: optuna.storages.BaseStorage,
    study_id: int,
    grace_s: float,
    on_lost: Callable[[FrozenTrial], None],
    now: Callable[[], datetime] = datetime.now,
) -> None:
    """FAIL each RUNNING trial older than grace_s whose last heartbeat, if it has one, is older too.
    Its start is compared on this machine's clock (Optuna writes it with the asking worker's clock),
    its heartbeat on the database's, which wrote it. A re-asked trial starts anew, so its old
    heartbeat does not make it stale. One query for the whole study."""
    database = rdb(storage)
    if database is None:
        return  # in memory: one process, nothing another worker could find stale
    grace = timedelta(seconds=grace_s)
    trials, beats = models.TrialModel.__table__.c, models.TrialHeartbeatModel.__table__.c
    query = (
        sqlalchemy.select(trials.trial_id, trials.datetime_start, beats.heartbeat, sqlalchemy.func.now())
        .select_from(
            models.TrialModel.__table__.outerjoin(
                models.TrialHeartbeatModel.__table__, beats.trial_id == trials.trial_id
            )
        )
        .where(trials.study_id == study_id, trials.state == TrialState.RUNNING.name)
    )
    with database.engine.connect() as connection:
        rows = connection.execute(query).all()
    local_now = now()
    for trial_id, started, beat, db_now in rows:
        db_now = db_now.replace(tzinfo=None) if isinstance(db_now, datetime) else datetime.fromisoformat(str(db_now))
        if started is None or local_now - started <= grace or (beat is not None and db_now - beat <= grace):
            continue
        if settle(
            storage,
            trial_id,
            TrialState.FAIL,
            reason=f"its worker stopped: no heartbeat for {grace_s:g} s",
            stopped=True,
        ):
            on_lost(storage.get_trial(trial_id))


class Heartbeat:
    """One thread per worker that beats for the trial it is running, at once and every interval, and
    meanwhile fails other workers' stale trials, so that a dead worker's trial is failed within about
    three intervals, however long the trials here are."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: float, check: Callable[[], None]) -> None:
        self.storage = rdb(storage)
        self.interval, self.check = interval, check
        self.trial_id: Optional[int] = None
        self.closed = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def watch(self, trial_id: Optional[int]) -> None:
        """Beat for this trial from now on (None: for none). Its first beat comes within an interval: a
        trial is stale only after two silent ones, so no beat is written at once (one query less a trial)."""
        self.trial_id = trial_id
        if self.storage is None or trial_id is None:
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()

    def _beat(self) -> None:
        while not self.closed.wait(self.interval):
            try:
                if self.trial_id is not None:
                    self.storage.record_heartbeat(self.trial_id)
                self.check()
            except Exception as error:  # a short database outage; the next beat retries
                log.warning("heartbeat of trial id %s: %s", self.trial_id, one_line(error))

    def close(self) -> None:
        self.closed.set()
        if self.thread is not None:
            self.thread.join()
