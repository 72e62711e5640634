"""The worker loop: ask a trial, beat for it, launch it, end it, and stop at the study's budget.

Every worker (the n_jobs processes or threads of one command, other commands, other machines) runs
this loop on the same study (the rules it shares with the others are in study.py):
- the budget is global: a worker asks for a trial only while run + running < n_trials (run: COMPLETE,
  PRUNED, or FAIL by its own error; a trial failed because its worker or job was lost is replaced, not
  counted), and a trial numbered past the budget (two workers asked at once), or asked as another
  worker stopped the study, goes back to WAITING for a later ask;
- the failure budget counts the study's failed trials, all workers together;
- a worker stops once the budget is reached, or the study stopped early (stopping.py), and nothing runs.
Each loop reads the study's trials once.
"""

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.hydra_optuna_async_sweeper import _stopping as stopping
from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError, one_line
from hydra_plugins.hydra_optuna_async_sweeper._study import (
    REASON,
    STOPPED,
    Heartbeat,
    Tally,
    claim_asked,
    counted,
    fail_stale,
    settle,
    tally,
)

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often a worker waiting on others' running trials looks again

Lost = Callable[[FrozenTrial], None]  # told of each trial this worker found stale and failed
Extend = Callable[[optuna.Trial], None]  # hydra.sweeper.custom_search_space, after the space is sampled
Launch = Callable[[optuna.Trial], TrialState]  # runs a trial's job to its end and ends the trial


@dataclass(frozen=True)
class Budget:
    n_trials: int  # the study's total of trials run, all workers and reruns
    max_failure_rate: float  # failed trials tolerated, as a share of n_trials
    heartbeat_interval: float  # seconds
    stop: Optional[stopping.Rule] = None  # hydra.sweeper.stop


class Worker:
    def __init__(
        self,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        budget: Budget,
        on_lost: Lost,
        extend: Optional[Extend] = None,
    ) -> None:
        self.study, self.space, self.budget = study, space, budget
        self.on_lost, self.extend = on_lost, extend
        self.checked = -math.inf  # when this worker last looked for stale trials (monotonic seconds)
        self.running: Optional[int] = None  # the id of the trial this worker runs
        self.decision: Optional[str] = None  # the study's stop decision, once this worker has seen one
        self.looked = False  # whether this worker has read the study for a decision yet

    def fail_stale(self, every: float = 0.0) -> None:
        if time.monotonic() - self.checked >= every:
            self.checked = time.monotonic()
            fail_stale(self.study._storage, self.study._study_id, 2 * self.budget.heartbeat_interval, self.on_lost)

    def check_failures(self, counts: Tally) -> None:
        if counts.failed > math.floor(self.budget.max_failure_rate * self.budget.n_trials):
            failed = [
                t
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if not t.user_attrs.get(STOPPED)
            ]
            last = max(failed, key=lambda t: t.number)
            raise SweeperError(
                f"{len(failed)} failed trials in study {self.study.study_name} (all workers), more than "
                f"hydra.sweeper.max_failure_rate={self.budget.max_failure_rate} of n_trials={self.budget.n_trials} allows; "
                f"last: trial {last.number}: {last.user_attrs.get(REASON, 'no reason recorded')}"
            )

    def stop_reason(self) -> Optional[str]:
        """Why the study stops before its budget: a decision kept in the study under this budget or a
        larger one, else this worker's rule, kept in the study when it is met. A decision stands once
        made: this worker remembers it, and without a rule of its own reads the study for one only
        at its start and after each ask (run_one), which is where another worker's decision matters."""
        if self.decision is not None or (self.budget.stop is None and self.looked):
            return self.decision
        self.looked = True
        kept = stopping.kept(self.study)
        if kept is not None and kept["n_trials"] >= self.budget.n_trials:
            self.decision = kept["reason"]
            return self.decision
        if self.budget.stop is None:
            return None
        finished = sorted(
            (t for t in self.study.get_trials(deepcopy=False) if counted(t)), key=lambda t: t.datetime_complete
        )
        reason = self.budget.stop.reason(
            finished, since=kept["finished"] if kept else 0
        )  # patience counts anew after an earlier stop
        if reason is not None:
            stopping.keep(self.study, reason, self.budget.n_trials, len(finished))
            log.info("study %s stops: %s", self.study.study_name, reason)
            self.decision = reason
        return reason

    def run(self, launch: Launch) -> Counter:
        """Trials until the study's budget is reached, or it stopped early, and nothing runs; the
        states of this worker's trials."""
        mine: Counter = Counter()
        heartbeat = Heartbeat(self.study._storage, self.budget.heartbeat_interval, lambda: self.fail_stale())
        try:
            while True:
                self.fail_stale(
                    every=self.budget.heartbeat_interval
                )  # between trials; while one runs, the heartbeat looks
                counts = tally(self.study)
                self.check_failures(counts)  # first: the trial that used up the budget may be one failure too many
                finished, running = counts.run, counts.running
                stopped = self.stop_reason() is not None
                if (finished >= self.budget.n_trials or stopped) and running == 0:
                    return mine
                if stopped or finished + running >= self.budget.n_trials:
                    time.sleep(POLL_S)  # the rest are running elsewhere; if one dies, this worker replaces it
                    self.checked = -math.inf
                    continue
                state = self.run_one(launch, heartbeat)
                if state is not None:
                    mine[state] += 1
        finally:
            heartbeat.close()

    def run_one(self, launch: Launch, heartbeat: Heartbeat) -> Optional[TrialState]:
        sampler, storage = self.study.sampler, self.study._storage
        sampler.asking = None
        trial_id: Optional[int] = None
        try:
            try:
                trial = self.study.ask()
            except Exception as error:  # the sampler raised in before_trial: its trial is RUNNING
                if sampler.asking is None:
                    raise
                trial_id = sampler.asking
                settle(storage, trial_id, TrialState.FAIL, reason=f"the sampler failed: {one_line(error)}")
                log.warning("trial id %d FAIL: the sampler failed: %s", trial_id, one_line(error))
                return TrialState.FAIL
            if not claim_asked(self.study, trial):
                log.info("trial %d was handed to another worker at once: asking again", trial.number)
                return None  # the other worker runs it; this one never touches it
            trial_id = self.running = trial._trial_id
            heartbeat.watch(trial_id)
            ahead = tally(self.study, below=trial.number)
            # Looked at after the ask, whose trial is RUNNING in the study by now: a worker that
            # stopped the study before it sees the stop here, one that stops it later sees this
            # trial running and leaves the close of the parent run to this worker.
            self.decision = self.decision or stopping.standing(self.study, self.budget.n_trials)
            if ahead.run + ahead.running >= self.budget.n_trials or self.decision is not None:
                settle(storage, trial_id, TrialState.WAITING)  # over budget or stopped: for a later ask
                return None
            try:
                for name, distribution in self.space.items():
                    trial._suggest(name, distribution)
                if self.extend is not None:
                    self.extend(trial)
            except Exception as error:  # a sampler or custom_search_space error: this trial's, not the sweep's
                settle(storage, trial_id, TrialState.FAIL, reason=f"sampling failed: {one_line(error)}")
                log.warning("trial %d FAIL: sampling failed: %s", trial.number, one_line(error))
                return TrialState.FAIL
            return launch(trial)
        except BaseException as error:
            if trial_id is not None:
                interrupted = isinstance(error, KeyboardInterrupt)
                settle(
                    storage,
                    trial_id,
                    TrialState.FAIL,
                    reason="interrupted" if interrupted else one_line(error),
                    stopped=interrupted,
                )
            raise
        finally:
            heartbeat.watch(None)
            self.running = None
