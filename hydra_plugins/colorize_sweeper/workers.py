"""The worker loop: ask a trial, keep its heartbeat, launch it, and stop at the study's budget.

Every worker (the n_jobs processes of one command, other commands, other machines) runs this loop on
the same study; the storage is the only coordination:
- the budget is global: a worker asks for a trial only while run + running < n_trials (run: COMPLETE,
  PRUNED, or FAIL by its own error; a trial failed because its worker died is replaced, not counted),
  and a trial numbered past the budget (two workers asked at once), or asked as another worker stopped
  the study, goes back to WAITING for a later ask;
- a worker records its running trial's heartbeat from the moment it asks; any worker fails a RUNNING
  trial that started more than twice heartbeat_interval ago and has not beaten within that time (its
  worker died, before or after its first beat), so a dead worker's trial is replaced and no worker
  waits without a deadline;
- the failure budget counts the study's failed trials, all workers together;
- a worker stops once the budget is reached, or the study stopped early (stopping.py), and nothing runs.
An in-memory study (storage null) has one worker: no heartbeats, nothing to go stale.
"""

import logging
import math
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Callable, Optional

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.distributions import BaseDistribution
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from colorize import sweeping
from colorize.errors import ColorizeError, one_line
from hydra_plugins.colorize_sweeper import stopping

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often a worker waiting on others' running trials looks again

Lost = Callable[[FrozenTrial], None]
Extend = Callable[[optuna.Trial], None]


def counted(trial: FrozenTrial) -> bool:
    """A trial that uses up the budget: COMPLETE, PRUNED, or FAIL by its own error."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(sweeping.STOPPED)
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def fail_stale(storage: optuna.storages.RDBStorage, study_id: int, grace_s: float, on_lost: Lost, now: Callable[[], datetime] = datetime.now) -> None:
    """FAIL each RUNNING trial older than grace_s whose last heartbeat, if it has one, is older too.
    Its start is compared on this machine's clock (Optuna writes it with the asking worker's clock),
    its heartbeat on the database's, which wrote it. A re-asked trial starts anew, so its old
    heartbeat does not make it stale."""
    grace = timedelta(seconds=grace_s)
    trials, beats = models.TrialModel.__table__.c, models.TrialHeartbeatModel.__table__.c
    query = (
        sqlalchemy.select(trials.trial_id, trials.datetime_start, beats.heartbeat)
        .select_from(models.TrialModel.__table__.outerjoin(models.TrialHeartbeatModel.__table__, beats.trial_id == trials.trial_id))
        .where(trials.study_id == study_id, trials.state == TrialState.RUNNING.name)
    )
    with storage.engine.connect() as connection:
        db_now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar().replace(tzinfo=None)
        rows = connection.execute(query).all()
    local_now = now()
    for trial_id, started, beat in rows:
        if started is None or local_now - started <= grace or (beat is not None and db_now - beat <= grace):
            continue
        reason = f"its worker stopped: no heartbeat for {grace_s:g} s"
        if sweeping.settle(storage, trial_id, TrialState.FAIL, reason=reason, stopped=True):
            on_lost(storage.get_trial(trial_id))


class Heartbeat:
    """Records a trial's heartbeat at once and every interval until closed, and meanwhile fails other
    workers' stale trials, so that a dead worker's trial is failed within about three intervals,
    however long the trials here are."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float, check: Callable[[], None]) -> None:
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        if not isinstance(storage, optuna.storages.RDBStorage):
            return  # in memory: one process, nothing another worker could find stale
        storage.record_heartbeat(trial_id)

        def beat() -> None:
            while not self.stop.wait(interval):
                try:
                    storage.record_heartbeat(trial_id)
                    check()
                except Exception as error:  # a short database outage; the next beat retries
                    log.warning("heartbeat of trial id %d: %s", trial_id, one_line(error))

        self.thread = threading.Thread(target=beat, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def claim(storage: optuna.storages.BaseStorage, study_id: int, key: str) -> bool:
    """True for exactly one caller per key, in any process: the study's system attributes are unique
    per key, so of the workers inserting the same key one succeeds (Optuna's own setter upserts)."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return True  # in memory: the only worker
    table = models.StudySystemAttributeModel.__table__
    try:
        with storage.engine.begin() as connection:
            connection.execute(table.insert().values(study_id=study_id, key=key, value_json="true"))
    except sqlalchemy.exc.IntegrityError:
        return False
    return True


class Worker:
    """One worker's loop on the study; launch runs a trial to its end and returns its final state."""

    def __init__(
        self,
        study: optuna.Study,
        storage: optuna.storages.BaseStorage,
        space: dict[str, BaseDistribution],
        n_trials: int,
        max_failure_rate: float,
        heartbeat_interval: float,
        on_lost: Lost,
        extend: Optional[Extend] = None,
        rule: Optional[stopping.Rule] = None,
    ) -> None:
        self.extend = extend  # hydra.sweeper.custom_search_space, called after the space is sampled
        self.rule = rule  # hydra.sweeper.stop
        self.study = study
        self.storage = storage
        self.space = space
        self.n_trials = n_trials
        self.max_failure_rate = max_failure_rate
        self.heartbeat_interval = heartbeat_interval
        self.on_lost = on_lost

    def fail_stale(self) -> None:
        if isinstance(self.storage, optuna.storages.RDBStorage):
            fail_stale(self.storage, self.study._study_id, 2 * self.heartbeat_interval, self.on_lost)

    def counts(self) -> tuple[int, int]:
        """Trials run (counted) and running trials of the study."""
        trials = self.study.get_trials(deepcopy=False)
        return sum(map(counted, trials)), sum(t.state == TrialState.RUNNING for t in trials)

    def check_failures(self) -> None:
        failed = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if not t.user_attrs.get(sweeping.STOPPED)]
        if len(failed) > math.floor(self.max_failure_rate * self.n_trials):
            last = max(failed, key=lambda t: t.number)
            raise ColorizeError(
                f"{len(failed)} failed trials in study {self.study.study_name} (all workers), more than "
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate} of n_trials={self.n_trials} allows; "
                f"last: trial {last.number}: {last.user_attrs.get(sweeping.REASON, 'no reason recorded')}"
            )

    def stop_reason(self) -> Optional[str]:
        """Why the study stops before its budget: a decision kept in the study under this budget or a
        larger one, else this worker's rule, kept in the study when it is met."""
        reason = stopping.standing(self.study, self.n_trials)
        if reason is not None or self.rule is None:
            return reason
        earlier = stopping.kept(self.study)  # made under a smaller budget: patience counts anew after it
        finished = sorted((t for t in self.study.get_trials(deepcopy=False) if counted(t)), key=lambda t: t.datetime_complete)
        reason = self.rule.reason(finished, since=earlier["finished"] if earlier else 0)
        if reason is not None:
            stopping.keep(self.study, reason, self.n_trials, len(finished))
            log.info("study %s stops: %s", self.study.study_name, reason)
        return reason

    def run(self, launch: Callable[[optuna.Trial], TrialState]) -> Counter:
        """Trials until the study's budget is reached, or it stopped early, and nothing runs; the
        states of this worker's trials."""
        mine: Counter = Counter()
        while True:
            self.fail_stale()
            self.check_failures()  # first: the trial that used up the budget may be one failure too many
            finished, running = self.counts()
            stopped = self.stop_reason() is not None
            if (finished >= self.n_trials or stopped) and running == 0:
                return mine
            if stopped or finished + running >= self.n_trials:
                time.sleep(POLL_S)  # the rest are running elsewhere; if one dies, this worker replaces it
                continue
            state = self.run_one(launch)
            if state is not None:
                mine[state] += 1

    def run_one(self, launch: Callable[[optuna.Trial], TrialState]) -> Optional[TrialState]:
        sampler = self.study.sampler
        sampler.asking = None
        trial_id: Optional[int] = None
        try:
            try:
                trial = self.study.ask()
            except Exception as error:  # the sampler raised in before_trial: its trial is RUNNING
                if sampler.asking is None:
                    raise
                trial_id = sampler.asking
                sweeping.settle(self.storage, trial_id, TrialState.FAIL, reason=f"the sampler failed: {one_line(error)}")
                log.warning("trial id %d FAIL: the sampler failed: %s", trial_id, one_line(error))
                return TrialState.FAIL
            trial_id = trial._trial_id
            heartbeat = Heartbeat(self.storage, trial_id, self.heartbeat_interval, self.fail_stale)
            try:
                ahead = sum(1 for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and (counted(t) or t.state == TrialState.RUNNING))
                # Looked at after the ask, whose trial is RUNNING in the study by now: a worker that
                # stopped the study before it sees the stop here, one that stops it later sees this
                # trial running and leaves the close of the parent run to this worker.
                if ahead >= self.n_trials or stopping.standing(self.study, self.n_trials) is not None:
                    sweeping.settle(self.storage, trial_id, TrialState.WAITING)  # over budget or stopped: for a later ask
                    return None
                try:
                    for name, distribution in self.space.items():
                        trial._suggest(name, distribution)
                    if self.extend is not None:
                        self.extend(trial)
                except Exception as error:  # a sampler or custom_search_space error: this trial's, not the sweep's
                    sweeping.settle(self.storage, trial_id, TrialState.FAIL, reason=f"sampling failed: {one_line(error)}")
                    log.warning("trial %d FAIL: sampling failed: %s", trial.number, one_line(error))
                    return TrialState.FAIL
                return launch(trial)
            finally:
                heartbeat.close()
        except BaseException as error:
            if trial_id is not None:
                interrupted = isinstance(error, KeyboardInterrupt)
                reason = "interrupted" if interrupted else one_line(error)
                sweeping.settle(self.storage, trial_id, TrialState.FAIL, reason=reason, stopped=interrupted)
            raise
