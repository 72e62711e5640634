"""The sweep: a worker loop of ask, launch one job, settle, against a study in an Optuna RDB storage.

Every worker (the n_jobs processes of one command, other commands, other machines) runs the same
loop on the same study; the storage is the only coordination:
- the budget is global: a worker asks for a trial only while finished + running < n_trials, and a
  trial numbered past the budget (two workers asked at once) goes back to WAITING for a later ask;
- a worker keeps its running trials' heartbeats; any worker marks a trial silent for twice
  heartbeat_interval FAIL (its process died), and waits for others' running trials before it stops,
  so a dead worker's trial is replaced;
- the study that the first worker creates holds the id of the sweep's one MLflow parent run.
"""

import functools
import logging
import math
import re
import shlex
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

import colorize.plots  # noqa: F401  (selects matplotlib's file-only backend before any figure)
from colorize import sweeping, tracking
from colorize.errors import ColorizeError, one_line

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often a worker waiting on others' running trials looks again
BEST_SHOWN = 5  # rows of the final table
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # trials that use up the budget
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
UNQUOTED = re.compile(r"[\w./:@+\-%]*")  # values Hydra's override grammar reads without quotes


def distribution(override: Override) -> Optional[BaseDistribution]:
    """hydra-optuna-sweeper's syntax: choice(...), range(...), interval(...), int(interval(...)),
    tag(log, ...); None for a plain value."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())  # Hydra's range excludes stop; Optuna's high is included
        if not values:
            raise ColorizeError(f"{override.input_line}: an empty range")
        step = abs(value.step)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(min(values), max(values), step=int(step))
        return FloatDistribution(float(min(values)), float(min(values)) + step * (len(values) - 1), step=float(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ColorizeError(f"{override.input_line}: the Optuna sweeper cannot sample this")


def grid_values(key: str, dist: BaseDistribution) -> list:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
        count = round((dist.high - dist.low) / dist.step) + 1
        return [dist.low + i * dist.step for i in range(count)]
    raise ColorizeError(f"{key}: the grid sampler needs choice(...) or range(...), not {dist}")


def quote(value: Any) -> str:
    text = str(value)
    if isinstance(value, str) and not UNQUOTED.fullmatch(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Heartbeat:
    """Records a trial's heartbeat every interval until stopped (Optuna's own thread serves only
    optimize()), and meanwhile looks for other workers' silent trials, so that a dead worker's
    trial is marked FAIL within about three intervals, however long the trials here are."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage, trial_id: int, interval: float) -> None:
        self.stop = threading.Event()
        storage.record_heartbeat(trial_id)  # at once: a trial without heartbeats is never found stale

        def beat() -> None:
            while not self.stop.wait(interval):
                try:
                    storage.record_heartbeat(trial_id)
                    fail_stale_trials(study)
                except Exception as error:  # a short database outage; the next beat retries
                    log.warning("heartbeat of trial id %d: %s", trial_id, one_line(error))

        self.thread = threading.Thread(target=beat, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class OptunaSweeperImpl(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        storage: str,
        study_name: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[DictConfig],
        heartbeat_interval: int,
        worker: int,
    ) -> None:
        self.sampler = sampler
        self.pruner_config = pruner
        self.direction = direction.name if hasattr(direction, "name") else str(direction)
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params or {}
        self.heartbeat_interval = heartbeat_interval
        self.worker = worker
        self.created = False
        self.last_failure = ""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except ColorizeError as error:
            raise SystemExit(f"colorize: error: {error}") from None

    def _sweep(self, arguments: list[str]) -> None:
        if not 0 <= self.max_failure_rate <= 1:
            raise ColorizeError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} must be in [0, 1]")
        for key in ("n_trials", "n_jobs", "heartbeat_interval"):
            if getattr(self, key) < 1:
                raise ColorizeError(f"hydra.sweeper.{key}={getattr(self, key)} must be >= 1")
        parsed = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(
            [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        )
        space: dict[str, BaseDistribution] = {}
        fixed: dict[str, str] = {}  # later wins, so the command line beats the sweep's params
        for override in parsed:
            key = override.get_key_element()
            space.pop(key, None)
            fixed.pop(key, None)
            found = distribution(override)
            if found is None:
                fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
            else:
                space[key] = found
        if not space:
            raise ColorizeError("nothing to search: give hydra.sweeper.params or a sweep such as optimizer.lr='tag(log, interval(1e-4, 1e-2))'")
        name = self.study_name or self.config.hydra.runtime.choices.get("sweep") or "colorize"
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        storage = sweeping.open_storage(self.storage_url, self.heartbeat_interval, self._lost)
        study = self._study(storage, name, space)
        parent = self._parent_run(study, name, space, fixed)
        log.info(
            "study %s in %s: %d of %d trials finished; sweep dir %s",
            name, tracking.hide_password(self.storage_url), self._counts(study)[0], self.n_trials, sweep_dir,
        )
        workers = self._start_workers(sweep_dir) if self.worker == 0 and self.n_jobs > 1 else []
        status = "FAILED"
        try:
            mine = self._run_trials(study, storage, space, fixed)
            for process in workers:
                process.wait()
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            for process in workers:
                if process.poll() is None:
                    process.terminate()
            if parent is not None and self.worker == 0 and status != "FINISHED":
                parent.end(status)
        failed_workers = [p.args for p in workers if p.returncode != 0]
        if self.worker == 0:
            self._summarize(study, parent, fixed, sweep_dir)
        log.info("this worker ran %d trials: %s", sum(mine.values()), ", ".join(f"{n} {s.name}" for s, n in mine.items()) or "none")
        if failed_workers:
            raise ColorizeError(f"{len(failed_workers)} of {len(workers)} worker processes failed (see their output above)")

    def _lost(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial whose worker stopped beating: Optuna has marked it FAIL; close its MLflow run too."""
        reason = f"its worker stopped: no heartbeat for {2 * self.heartbeat_interval} s"
        log.warning("trial %d marked FAIL: %s", trial.number, reason)
        run_id, uri = trial.user_attrs.get(sweeping.RUN), OmegaConf.select(self.config, "tracking.uri")
        if run_id and uri:
            # Apart: this runs in a heartbeat thread, which a tracking-server outage (MLflow retries
            # for minutes) must not stop, or this worker's own trial would go stale too.
            tags = {"optuna.state": "FAIL", "optuna.reason": reason}
            threading.Thread(target=tracking.end_lost_run, args=(uri, run_id, tags), daemon=True).start()

    def _study(self, storage: optuna.storages.RDBStorage, name: str, space: dict) -> optuna.Study:
        pruner = instantiate(self.pruner_config)
        sampler = instantiate(self.sampler)
        if isinstance(sampler, functools.partial):  # the grid sampler takes the space as lists of values
            grid = {key: grid_values(key, dist) for key, dist in space.items()}
            sampler = sampler(search_space=grid)
            size = math.prod(len(values) for values in grid.values())
            if size < self.n_trials:
                log.info("the grid has %d points: n_trials %d -> %d", size, self.n_trials, size)
                self.n_trials = size
        try:
            # Only one worker can create the study (unique name): that one creates the parent run.
            study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner, direction=self.direction)
            self.created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            self.created = False
            if study.direction.name.lower() != self.direction:
                raise ColorizeError(
                    f"study {name} in {tracking.hide_password(self.storage_url)} is to {study.direction.name.lower()}, "
                    f"not {self.direction}: set hydra.sweeper.study_name to start a new one"
                ) from None
        study.set_user_attr(sweeping.PRUNER, OmegaConf.to_container(self.pruner_config, resolve=True))
        running = self._counts(study)[1]
        if self.worker > 0 or running:
            # Same seed, same proposals: a second worker on a seeded sampler would repeat the first.
            sampler.reseed_rng()
        return study

    def _parent_run(self, study: optuna.Study, name: str, space: dict, fixed: dict) -> Optional[tracking.ParentRun]:
        uri = OmegaConf.select(self.config, "tracking.uri")
        experiment = OmegaConf.select(self.config, "tracking.experiment")
        if uri is None or experiment is None:
            return None
        tracking.check_server(uri)
        if not self.created:
            deadline = time.monotonic() + 60  # the creating worker sets it right after creating the study
            while sweeping.PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                time.sleep(0.5)
            run_id = study.user_attrs.get(sweeping.PARENT_RUN)
            if run_id is not None:
                parent = tracking.ParentRun(uri, run_id)
                if self.worker > 0 or parent.reopen():
                    return parent
                log.warning("parent run %s of study %s is gone from %s: starting a new one", run_id, name, tracking.hide_password(uri))
        params = {
            "sampler": self.sampler._target_.rsplit(".", 1)[-1],
            "pruner": self.pruner_config._target_.rsplit(".", 1)[-1],
            "direction": self.direction,
            **{f"space.{key}": repr(dist) for key, dist in space.items()},
            **{f"fixed.{key}": value for key, value in fixed.items()},
        }
        tags = {"optuna.study": name, "optuna.storage": self.storage_url}
        parent = tracking.ParentRun.create(uri, experiment, f"sweep-{name}", params, tags)
        study.set_user_attr(sweeping.PARENT_RUN, parent.run_id)
        return parent

    def _start_workers(self, sweep_dir: Path) -> list[subprocess.Popen]:
        """n_jobs - 1 more processes of this same command: separate interpreters, one study."""
        own = [a for a in sys.orig_argv[1:] if not a.startswith(("hydra.sweeper.n_jobs=", "hydra.sweep.dir="))]
        workers = []
        for k in range(1, self.n_jobs):
            args = [sys.executable, *own, "hydra.sweeper.n_jobs=1", f"hydra.sweeper.worker={k}", f"hydra.sweep.dir={quote(str(sweep_dir))}"]
            workers.append(subprocess.Popen(args))
        log.info("started %d more worker processes", len(workers))
        return workers

    @staticmethod
    def _counts(study: optuna.Study) -> tuple[int, int]:
        states = Counter(t.state for t in study.get_trials(deepcopy=False))
        return sum(states[s] for s in COUNTED), states[TrialState.RUNNING]

    def _run_trials(self, study: optuna.Study, storage: optuna.storages.RDBStorage, space: dict, fixed: dict) -> Counter:
        mine: Counter = Counter()
        allowed_failures = math.floor(self.max_failure_rate * self.n_trials)
        while True:
            fail_stale_trials(study)
            finished, running = self._counts(study)
            if finished >= self.n_trials:
                return mine
            if finished + running >= self.n_trials:
                time.sleep(POLL_S)  # the rest are running elsewhere; if one dies, this worker replaces it
                continue
            if mine[TrialState.FAIL] > allowed_failures:
                raise ColorizeError(
                    f"{mine[TrialState.FAIL]} failed trials, more than hydra.sweeper.max_failure_rate={self.max_failure_rate} "
                    f"of n_trials={self.n_trials} allows; last: {self.last_failure}"
                )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Heartbeat of storage")  # ask/tell: this loop keeps the heartbeat
                trial = study.ask(space)
            trial_id = trial._trial_id  # the job reaches its trial by this id, from any process
            heartbeat = Heartbeat(study, storage, trial_id, self.heartbeat_interval)
            try:
                ahead = sum(1 for t in study.get_trials(deepcopy=False, states=TAKEN) if t.number < trial.number)
                if ahead >= self.n_trials:
                    storage.set_trial_state_values(trial_id, TrialState.WAITING)  # over budget: for a later ask
                    continue
                state = self._run_one(study, storage, trial, trial_id, fixed)
            except BaseException as error:
                if storage.get_trial(trial_id).state == TrialState.RUNNING:
                    reason = "interrupted" if isinstance(error, KeyboardInterrupt) else one_line(error)
                    trial.set_user_attr(sweeping.REASON, reason)
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            finally:
                heartbeat.close()
            mine[state] += 1

    def _run_one(self, study: optuna.Study, storage: optuna.storages.RDBStorage, trial: optuna.Trial, trial_id: int, fixed: dict) -> TrialState:
        overrides = [
            *fixed.values(),
            *(f"{key}={quote(value)}" for key, value in trial.params.items()),
            "trial.storage=${hydra:sweeper.storage}",  # resolved in the job: launcher logs never show a password
            f"trial.study={quote(study.study_name)}",
            f"trial.id={trial_id}",
        ]
        [result] = self.launcher.launch([overrides], initial_job_idx=trial.number)
        frozen = storage.get_trial(trial_id)
        if frozen.state == TrialState.RUNNING:
            # The job ended without telling Optuna (an error before training, or a task that does
            # not report): settle it from what the launcher returned.
            frozen = self._settle(study, trial, result)
        reason = frozen.user_attrs.get(sweeping.REASON, "no heartbeat: marked FAIL by a worker")
        value = f"{frozen.value:.4f}" if frozen.state == TrialState.COMPLETE else reason
        log.info("trial %d %s: %s  (%s)", frozen.number, frozen.state.name, value, " ".join(f"{k}={v}" for k, v in frozen.params.items()))
        if frozen.state == TrialState.FAIL:
            self.last_failure = f"trial {frozen.number}: {reason}"
        return frozen.state

    def _settle(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> FrozenTrial:
        if result.status == JobStatus.COMPLETED:
            try:
                value = float(result.return_value)
            except (TypeError, ValueError):
                value = math.nan
            if math.isfinite(value):
                return study.tell(trial, value)
            reason = f"the task returned {result.return_value!r}, not a finite number"
        else:
            try:
                result.return_value  # raises the job's exception
                reason = "the job failed"
            except Exception as error:
                reason = one_line(error)
        trial.set_user_attr(sweeping.REASON, reason)
        return study.tell(trial, state=TrialState.FAIL)

    def _summarize(self, study: optuna.Study, parent: Optional[tracking.ParentRun], fixed: dict, sweep_dir: Path) -> None:
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state.name for t in trials)
        complete = sorted(
            (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=self.direction == "maximize"
        )
        print(f"\nstudy {study.study_name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
        if not complete:
            print("no trial completed")
            if parent is not None:
                parent.end("FAILED")
            return
        best = complete[0]
        keys = list(best.params)
        print(f"best trials ({self.direction}):")
        rows = [["trial", "value", *keys, "seconds"]]
        for t in complete[:BEST_SHOWN]:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
            rows.append([str(t.number), f"{t.value:.4f}", *(f"{t.params.get(k, '')}" for k in keys), f"{seconds:.0f}"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        command = self._command(fixed, best.params)
        print(f"reproduce the best (trial {best.number}):\n  {command}\n")
        results = {"name": "optuna", "study": study.study_name, "best_trial": best.number, "best_params": best.params, "best_value": best.value, "command": command}
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        if parent is not None:
            parent.summary(
                metrics={"best_value": best.value, **{f"trials_{s.lower()}": n for s, n in states.items()}},
                tags={"best.trial": str(best.number), "best.command": command, **{f"best.{k}": str(v) for k, v in best.params.items()}},
                figures=self._plots(study),
                texts={"best.yaml": OmegaConf.to_yaml(OmegaConf.create(results))},
            )
            parent.end("FINISHED")

    @staticmethod
    def _command(fixed: dict, params: dict) -> str:
        """The single run that repeats a trial: this command's plain overrides (sweep=<name> gives
        the sweep's fixed settings) and the trial's values, without -m."""
        argv = sys.orig_argv
        start = ["python", "-m", argv[2]] if len(argv) > 2 and argv[1] == "-m" else ["python", argv[1]]
        given = [value for key, value in fixed.items() if not key.startswith("hydra.")]
        return shlex.join([*start, *given, *(f"{k}={quote(v)}" for k, v in params.items())])

    @staticmethod
    def _plots(study: optuna.Study) -> dict[str, Any]:
        import optuna.visualization.matplotlib as vis

        figures = {}
        plotters = {
            "plots/optimization_history.png": vis.plot_optimization_history,
            "plots/param_importances.png": vis.plot_param_importances,
            "plots/parallel_coordinate.png": vis.plot_parallel_coordinate,
        }
        for name, plot in plotters.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the matplotlib backend is experimental in Optuna
                try:
                    axes = plot(study)
                except Exception as error:  # e.g. importances need two or more complete trials
                    log.info("no %s: %s", name, one_line(error))
                    continue
            axes = axes.flat[0] if hasattr(axes, "flat") else axes
            figure = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figures[name] = figure
        return figures
