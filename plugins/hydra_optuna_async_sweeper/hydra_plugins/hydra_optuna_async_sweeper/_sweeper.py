"""The sweep: settings and objectives, the search space checked before any trial, the study and
(opted in by hydra.sweeper.mlflow) its one MLflow parent run, then the workers (workers.py) and the
report (report.py). It reads only hydra.* keys of the app's config: a job reaches its trial through trial.py.

Trials run at once in one of two ways, by where the launcher runs a job:
- Hydra's basic launcher runs it in this process, and Hydra's job state (its config, logging, the
  working directory) is process-global: n_jobs workers are n_jobs processes (spawn.py) on a storage
  they share;
- a launcher that runs jobs elsewhere (joblib's processes, submitit's SLURM jobs) gets each job from
  one of n_jobs worker threads here: a thread asks a trial, hands its one job to the launcher, waits,
  ends the trial and asks the next, so a new trial starts as soon as any ends. An in-memory study
  works there too, unless a pruner needs the jobs to reach it (they cannot: refused at the start).
"""

import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.hydra_optuna_async_sweeper import _report as report
from hydra_plugins.hydra_optuna_async_sweeper import _sampler as sampler
from hydra_plugins.hydra_optuna_async_sweeper import _space as space
from hydra_plugins.hydra_optuna_async_sweeper import _spawn as spawn
from hydra_plugins.hydra_optuna_async_sweeper import _stopping as stopping
from hydra_plugins.hydra_optuna_async_sweeper import _workers as workers
from hydra_plugins.hydra_optuna_async_sweeper import trial
from hydra_plugins.hydra_optuna_async_sweeper._errors import INTERRUPTED_EXIT, NAME, SweeperError, mask, one_line
from hydra_plugins.hydra_optuna_async_sweeper._study import (
    PARENT_RUN,
    PRUNER,
    REASON,
    claim,
    open_storage,
    settle,
    tell,
)
from hydra_plugins.hydra_optuna_async_sweeper.trial import RUN

log = logging.getLogger(__name__)

CHAMPION = "champion"  # the alias that hydra.sweeper.register points at the best trial's model version
PARENT_WAIT_S = 60  # how long a worker waits for the creating worker to store the parent run's id
CLOSED = "parent_closed"  # study claim prefix: the one worker that closes the parent run
ADOPTED = "parent_adopted"  # study claim: who makes the parent when its creator died
ENQUEUED = "enqueued"  # study claim: hydra.sweeper.enqueue was done; trial user attribute: an enqueued trial
LOST_IN_A_ROW = (
    3  # jobs the launcher loses one after another (sbatch refuses, a worker pool dies) before the sweep stops
)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class OptunaSweeperImpl(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        storage: Optional[str],
        study_name: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[DictConfig],
        heartbeat_interval: int,
        worker: int,
        custom_search_space: Optional[str] = None,
        mlflow: Optional[DictConfig] = None,
        check: Optional[str] = None,
        register: Optional[str] = None,
        trial_id: Optional[int] = None,
        metric_names: Optional[Any] = None,
        stop: Optional[DictConfig] = None,
        enqueue: Optional[ListConfig] = None,
    ) -> None:  # hydra.sweeper's keys, as Hydra instantiates the plugin (config.py); trial_id is a job's own
        self.sampler_config, self.pruner_config = sampler, pruner
        given = direction if isinstance(direction, (list, tuple, ListConfig)) else [direction]
        self.directions = [d.name if hasattr(d, "name") else str(d) for d in given]
        named = metric_names if isinstance(metric_names, (list, tuple, ListConfig)) else [metric_names]
        self.metric_names = None if metric_names is None else [str(name) for name in named]
        self.storage_url, self.study_name = storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = params or {}
        self.custom_search_space, self.check, self.register = custom_search_space, check, register
        self.mlflow = mlflow if mlflow is not None and mlflow.get("tracking_uri") else None
        self.heartbeat_interval, self.worker = heartbeat_interval, worker
        self.stop = stop or {}
        self.lost_in_a_row = 0  # jobs the launcher lost one after another
        self.enqueue = [] if enqueue is None else OmegaConf.to_container(enqueue, resolve=True)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.in_process = isinstance(self.launcher, BasicLauncher)

    def sweep(self, arguments: list[str]) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(
                signal.SIGTERM, _interrupt
            )  # a SIGTERM (scancel, kill) ends trials and the parent run as Ctrl-C does
        try:
            self._sweep(arguments)
        except SweeperError as error:
            raise SystemExit(f"{NAME}: error: {mask(str(error))}") from None
        except KeyboardInterrupt as error:
            if self.worker == 0:  # the first process speaks for its workers, which stop with it
                print(f"{NAME}: interrupted ({str(error) or 'Ctrl-C'})", file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT) from None

    def _sweep(self, arguments: list[str]) -> None:
        self._check_settings()
        extend = self._extender()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        searched, fixed = space.parse(dict(self.params), arguments, parser)
        if not searched and extend is None:
            log.warning(
                "nothing to search (no hydra.sweeper.params, no sweep on the command line): each trial runs the same config"
            )
        sampler.check_fit(self.sampler_config._target_, searched, len(self.directions))
        first = space.enqueued(self.enqueue, searched)
        if len(first) > self.n_trials:
            raise SweeperError(f"hydra.sweeper.enqueue holds {len(first)} settings, more than n_trials={self.n_trials}")
        self._check_points(searched, fixed, first)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun(sweep_dir / "multirun.yaml")

        storage = optuna.storages.InMemoryStorage() if self.storage_url is None else open_storage(self.storage_url)
        study, created = self._study(storage, searched)
        name = study.study_name
        if first and claim(
            study._storage, study._study_id, ENQUEUED
        ):  # once per study, whichever worker or rerun comes first
            for point in first:
                study.enqueue_trial(point, user_attrs={ENQUEUED: True})
            log.info("study %s: %d enqueued settings go first", name, len(first))
        if self.storage_url is None:
            trial.MEMORY[name] = (os.getpid(), study._storage)  # jobs in this process reach it through trial.current()
        budget = workers.Budget(self.n_trials, self.max_failure_rate, self.heartbeat_interval, self.rule)

        def make_worker() -> workers.Worker:
            extended = None if extend is None else (lambda asked: extend(self.config, asked))
            return workers.Worker(self._worker_study(study, searched), searched, budget, self._lost, extended)

        finished = sum(map(workers.counted, study.get_trials(deepcopy=False)))
        parent, reopened_from = self._parent_run(study, created, searched, fixed, will_run=finished < self.n_trials)
        self.parent = parent
        log.info(
            "study %s in %s: %d of %d trials run; sweep dir %s",
            name,
            "memory" if self.storage_url is None else mask(self.storage_url),
            finished,
            self.n_trials,
            sweep_dir,
        )
        processes: list = []
        status = "FAILED"
        try:
            if self.in_process and self.worker == 0 and self.n_jobs > 1:
                devices, threads = spawn.cuda_devices(), spawn.thread_share(self.n_jobs)
                spawn.pin_this_process(devices, threads)
                processes = spawn.start(
                    self.n_jobs,
                    sweep_dir,
                    self.hydra_context,
                    self.config,
                    self.task_function,
                    arguments,
                    devices,
                    threads,
                )
            threads_here = 1 if self.in_process else self.n_jobs
            mine = self._run_workers(
                [make_worker() for _ in range(threads_here)], lambda asked: self._run_one(study, asked, fixed)
            )
            for process in processes:
                process.wait()
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            if processes:
                (sweep_dir / spawn.PAYLOAD).unlink(missing_ok=True)
            if parent is not None:
                self._close(parent, reopened_from, study, status)
        if self.worker == 0:
            report.print_table(study, sweep_dir, self.n_trials)
        log.info(
            "this worker ran %d trials: %s",
            sum(mine.values()),
            ", ".join(f"{n} {s.name}" for s, n in mine.items()) or "none",
        )
        failed = [p.args for p in processes if p.returncode != 0]
        if failed:
            raise SweeperError(f"{len(failed)} of {len(processes)} worker processes failed (see their output above)")

    def _run_workers(self, workers_here: list[workers.Worker], launch: workers.Launch) -> Any:
        """Every worker of this process to its end: one in this thread, or several threads (a launcher
        that runs jobs elsewhere). The first error of any stops the sweep."""
        if len(workers_here) == 1:
            return workers_here[0].run(launch)
        from collections import Counter

        results: list[Counter] = []
        errors: list[BaseException] = []

        def work(worker: workers.Worker) -> None:
            try:
                results.append(worker.run(launch))
            except BaseException as error:  # the failure budget, a storage error: the sweep stops with it
                errors.append(error)

        threads = [threading.Thread(target=work, args=(worker,), daemon=True) for worker in workers_here]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)  # a timed join keeps this thread's Ctrl-C deliverable
        except KeyboardInterrupt:  # the threads die with the process: their trials are ended here
            for worker in workers_here:
                if worker.running is not None:
                    settle(worker.study._storage, worker.running, TrialState.FAIL, reason="interrupted", stopped=True)
            raise
        if errors:
            raise errors[0]
        return sum(results, Counter())

    def _check_settings(self) -> None:
        if not 0 <= self.max_failure_rate <= 1:
            raise SweeperError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} must be in [0, 1]")
        for key in ("n_trials", "n_jobs", "heartbeat_interval"):
            if getattr(self, key) < 1:
                raise SweeperError(f"hydra.sweeper.{key}={getattr(self, key)} must be >= 1")
        wrong = [d for d in self.directions if d not in ("minimize", "maximize")]
        if wrong:
            raise SweeperError(f"hydra.sweeper.direction: {wrong[0]} is neither minimize nor maximize")
        prunes = not self.pruner_config._target_.endswith("NopPruner")
        launcher = type(self.launcher).__name__
        if self.storage_url is None and not self.in_process and prunes:
            raise SweeperError(
                f"hydra/sweeper/pruner needs each job to report to its trial, and {launcher} runs jobs in other processes, which cannot "
                "reach an in-memory study (hydra.sweeper.storage=null): set hydra.sweeper.storage (e.g. sqlite:///optuna.db), "
                "or use hydra/sweeper/pruner=none, or the basic launcher"
            )
        if self.storage_url is None and self.in_process and self.n_jobs > 1:
            log.warning(
                "hydra.sweeper.n_jobs=%d: the basic launcher runs each job in this process and an in-memory study lives in it alone, "
                "so trials run one at a time; set hydra.sweeper.storage for %d worker processes, or use hydra/launcher=joblib",
                self.n_jobs,
                self.n_jobs,
            )
            self.n_jobs = 1
        if self.metric_names is not None and len(self.metric_names) != len(self.directions):
            raise SweeperError(
                f"hydra.sweeper.metric_names names {len(self.metric_names)} objectives ({', '.join(self.metric_names)}) "
                f"but hydra.sweeper.direction has {len(self.directions)}: give one name per direction"
            )
        self.rule = stopping.Rule.from_settings(self.stop, self.directions)
        if len(self.directions) > 1 and self.register is not None:
            raise SweeperError(
                f"hydra.sweeper.register={self.register} registers the best trial's model, and a study of "
                f"{len(self.directions)} objectives has a Pareto front instead: register a front member yourself"
            )
        if self.register is not None and self.mlflow is None:
            raise SweeperError(
                f"hydra.sweeper.register={self.register} registers a model in MLflow: set hydra.sweeper.mlflow.tracking_uri"
            )
        if len(self.directions) > 1 and prunes:
            raise SweeperError(
                f"hydra/sweeper/pruner: Optuna cannot prune a study of {len(self.directions)} objectives; use hydra/sweeper/pruner=none"
            )

    def _extender(self) -> Optional[Callable[[DictConfig, optuna.Trial], None]]:
        """hydra.sweeper.custom_search_space, as hydra-optuna-sweeper resolves it: a leading dot names a
        module beside the app's script (its folder is on sys.path)."""
        if not self.custom_search_space:
            return None
        try:
            return get_method(self.custom_search_space.lstrip("."))
        except Exception as error:
            raise SweeperError(
                f"hydra.sweeper.custom_search_space={self.custom_search_space}: {one_line(error)}"
            ) from None

    def _check_points(
        self, searched: dict[str, BaseDistribution], fixed: dict[str, str], first: list[dict[str, Any]]
    ) -> None:
        """Compose the job config at the space's edges and at the enqueued settings with the fixed
        overrides, as the launcher will, and pass it to hydra.sweeper.check: a value no trial can use
        stops the sweep before the first."""
        check = get_method(self.check) if self.check else None
        for point in [*space.edge_points(searched), *first]:
            given = space.overrides(point)
            try:
                job = self.hydra_context.config_loader.load_sweep_config(self.config, [*fixed.values(), *given])
            except Exception as error:
                raise SweeperError(f"the sweep cannot start: {one_line(error)} (at {' '.join(given)})") from None
            if check is None:
                continue
            try:
                check(job)
            except Exception as error:
                raise SweeperError(
                    f"the sweep cannot start: {error} (hydra.sweeper.check={self.check} at {' '.join(given)})"
                ) from None

    def _save_multirun(self, path: Path) -> None:
        """Hydra's multirun.yaml, passwords masked. A literal password in the storage URL still reaches
        each trial's .hydra/hydra.yaml, which the job needs to reach its trial: an ${oc.env:...} does not."""
        raw = OmegaConf.to_container(self.config.hydra.sweeper, resolve=False)["storage"]
        if raw is not None and mask(raw) != raw:
            log.warning(
                "hydra.sweeper.storage holds a password in clear: masked in logs and multirun.yaml, but written to each trial's "
                ".hydra/hydra.yaml; 'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' leaves no trace of it"
            )
        path.write_text("\n".join(mask(line) for line in OmegaConf.to_yaml(self.config).splitlines()) + "\n")

    def _study(self, storage: optuna.storages.BaseStorage, searched: dict) -> tuple[optuna.Study, bool]:
        """The study and whether this worker created it."""
        self.pruner = instantiate(self.pruner_config)
        chosen, grid_size = sampler.build(self.sampler_config, searched)
        if grid_size is not None and grid_size < self.n_trials:
            log.info("the grid has %d points: n_trials %d -> %d", grid_size, self.n_trials, grid_size)
            self.n_trials = grid_size
        name = self.study_name
        try:
            # Only one worker can create the study (unique name): that one creates the parent run.
            study = optuna.create_study(
                storage=storage, study_name=name, sampler=chosen, pruner=self.pruner, directions=self.directions
            )
            created = True
            if self.metric_names is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter(
                        "ignore", optuna.exceptions.ExperimentalWarning
                    )  # stable in use since Optuna 3.2
                    study.set_metric_names(self.metric_names)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, sampler=chosen, pruner=self.pruner)
            created = False
            found = [d.name.lower() for d in study.directions]
            if found != self.directions:
                raise SweeperError(
                    f"study {name} in {mask(self.storage_url)} is to {' and '.join(found)}, "
                    f"not {' and '.join(self.directions)}: set hydra.sweeper.study_name to start a new one"
                ) from None
            kept = study.metric_names
            if self.metric_names is not None and kept is not None and kept != self.metric_names:
                raise SweeperError(
                    f"study {name} in {mask(self.storage_url)} optimises {', '.join(kept)}, "
                    f"not {', '.join(self.metric_names)}: set hydra.sweeper.study_name to start a new one"
                ) from None
        study.set_user_attr(PRUNER, OmegaConf.to_container(self.pruner_config, resolve=True))
        return study, created

    def _worker_study(self, study: optuna.Study, searched: dict) -> optuna.Study:
        """The study as one worker thread sees it: the same storage, a sampler of its own (the sampler
        knows which trial it is asking for, and each worker asks for its own)."""
        chosen, _ = sampler.build(self.sampler_config, searched)
        return optuna.load_study(
            study_name=study.study_name, storage=study._storage, sampler=chosen, pruner=self.pruner
        )

    def _parent_run(
        self, study: optuna.Study, created: bool, searched: dict, fixed: dict, will_run: bool
    ) -> tuple[Optional[Any], Optional[str]]:
        """The sweep's parent run (hydra.sweeper.mlflow), and the status it had when this worker
        reopened it (None: not reopened)."""
        if self.mlflow is None:
            return None, None
        from hydra_plugins.hydra_optuna_async_sweeper import (
            _parent as parent,
        )  # mlflow: seconds of imports, only for sweeps that opt in

        uri, name = self.mlflow.tracking_uri, study.study_name
        parent.check_server(uri)
        if not created:
            deadline = time.monotonic() + PARENT_WAIT_S  # the creating worker sets it right after creating the study
            while PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                time.sleep(0.5)
            run_id = study.user_attrs.get(PARENT_RUN)
            if run_id is None and not claim(study._storage, study._study_id, ADOPTED):
                # The creating worker died before storing the id, and another waiting worker makes or
                # adopts the parent: wait for that one's id rather than start a second parent.
                deadline = time.monotonic() + PARENT_WAIT_S
                while PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                    time.sleep(0.5)
                run_id = study.user_attrs.get(PARENT_RUN)
            if run_id is None:
                # This worker won the claim: the dead creator's run, if it got that far, is the parent.
                run_id = parent.find(uri, self.mlflow.experiment, name)
                if run_id is not None:
                    study.set_user_attr(PARENT_RUN, run_id)
            if run_id is not None:
                found = parent.ParentRun(uri, run_id)
                if not will_run:
                    return found, None
                before = found.reopen()
                if before is not None:
                    return found, before if before != "RUNNING" else None
                log.warning("parent run %s of study %s is gone from %s: starting a new one", run_id, name, mask(uri))
        params = {
            "sampler": self.sampler_config._target_.rsplit(".", 1)[-1],
            "pruner": self.pruner_config._target_.rsplit(".", 1)[-1],
            "direction": ",".join(self.directions),
            **({"metric_names": ",".join(self.metric_names)} if self.metric_names else {}),
            **{f"space.{key}": repr(dist) for key, dist in searched.items()},
            **{f"fixed.{key}": value for key, value in fixed.items()},
        }
        tags = {"optuna.study": name, "optuna.storage": self.storage_url or "memory"}
        created_run = parent.ParentRun.create(uri, self.mlflow.experiment, f"sweep-{name}", params, tags)
        study.set_user_attr(PARENT_RUN, created_run.run_id)
        return created_run, None

    def _close(self, parent: Any, reopened_from: Optional[str], study: optuna.Study, status: str) -> None:
        """End the parent run once: by the one worker that claims the close of the study at its present
        size, with nothing running. A worker stopped early (failures, Ctrl-C) closes it only if
        nothing else runs; one that reopened a closed parent and lost the claim closes it again."""
        try:
            trials = study.get_trials(deepcopy=False)
            run, running = sum(map(workers.counted, trials)), sum(t.state == TrialState.RUNNING for t in trials)
            if running > 0:
                return  # other workers' trials run: the last of them closes it
            # Keyed by the trials run so far, so that a resume that runs more closes it again; not by
            # all trials: one put back to WAITING after this close must not make a second one.
            won = claim(study._storage, study._study_id, f"{CLOSED}.{run}")
            if won and status == "FINISHED":
                summary = report.summarize(study, self.n_trials)
                if summary is None:
                    status = "FAILED"
                else:
                    parent.summary(**summary)
                    self._register_best(parent, study)
            if won:
                parent.end(status)
            elif reopened_from is not None:
                parent.end(reopened_from)  # the claim went to a worker that closed it before this one reopened it
        except Exception as error:  # a tracking-server outage must not hide how the sweep ended
            log.warning("parent run %s not closed: %s", parent.run_id, one_line(error))

    def _register_best(self, parent: Any, study: optuna.Study) -> None:
        """hydra.sweeper.register: the best trial's logged model as the next version of that registered
        model, alias champion. A task that logs no model is told in a warning; nothing is registered."""
        if self.register is None:
            return
        best = report.best_first(study)[0]
        run_id = best.user_attrs.get(RUN)
        version = parent.register_best(run_id, self.register, CHAMPION) if run_id else None
        if version is None:
            log.warning(
                "hydra.sweeper.register=%s: the best trial %d logged no model; nothing registered",
                self.register,
                best.number,
            )
            return
        log.info(
            "registered the best trial %d's model as models:/%s/%s, alias %s",
            best.number,
            self.register,
            version,
            CHAMPION,
        )
        parent.summary({}, {"best.model": f"models:/{self.register}/{version}"}, {}, {})

    def _lost(self, lost: FrozenTrial) -> None:
        """A trial whose worker stopped beating, now FAIL: close its MLflow run too."""
        run_id, reason = lost.user_attrs.get(RUN), lost.user_attrs.get(REASON, "")
        log.warning("trial %d marked FAIL: %s", lost.number, reason)
        if run_id and self.mlflow is not None:
            from hydra_plugins.hydra_optuna_async_sweeper import _parent as parent

            # Apart: this runs in a heartbeat thread, which a tracking-server outage (MLflow retries
            # for minutes) must not stop, or this worker's own trial would go stale too.
            tags = {"optuna.state": "FAIL", "optuna.reason": reason}
            threading.Thread(
                target=parent.end_lost_run, args=(self.mlflow.tracking_uri, run_id, tags), daemon=True
            ).start()

    def _run_one(self, study: optuna.Study, asked: optuna.Trial, fixed: dict) -> TrialState:
        overrides = [
            *fixed.values(),
            *space.overrides(asked.params),
            # The job reaches its trial from these (trial.current()), in any process.
            f"hydra.sweeper.trial_id={asked._trial_id}",
            f"hydra.sweeper.study_name={space.quote(study.study_name)}",
        ]
        try:
            [result] = self.launcher.launch([overrides], initial_job_idx=asked.number)
        except Exception as error:
            # The launcher itself failed, not the task (Hydra returns a task's error in its JobReturn):
            # the job was lost (scancel, a dead pool, a lost node). Replaced, not counted, unless it keeps happening.
            settle(
                study._storage,
                asked._trial_id,
                TrialState.FAIL,
                reason=f"its job was lost: {one_line(error)}",
                stopped=True,
            )
            self.lost_in_a_row += 1
            log.warning("trial %d FAIL: its job was lost: %s", asked.number, one_line(error))
            if self.lost_in_a_row >= LOST_IN_A_ROW:
                raise SweeperError(
                    f"{type(self.launcher).__name__} lost {self.lost_in_a_row} jobs in a row (last: {one_line(error)})"
                ) from None
            return TrialState.FAIL
        self.lost_in_a_row = 0
        outcome, values, reason = self._outcome(result)
        state, values = tell(study, asked, outcome, values, reason)
        if self.parent is not None:
            self._tag_trial_run(study, asked, state)
        shown = ", ".join(f"{v:.4f}" for v in values) if state == TrialState.COMPLETE else reason or ""
        log.info(
            "trial %d %s: %s  (%s)",
            asked.number,
            state.name,
            shown,
            " ".join(f"{k}={v}" for k, v in asked.params.items()),
        )
        return state

    def _tag_trial_run(self, study: optuna.Study, asked: optuna.Trial, state: TrialState) -> None:
        """The job's own MLflow run, if it named one, tagged with how its trial ended."""
        frozen = study._storage.get_trial(asked._trial_id)
        if RUN not in frozen.user_attrs:
            return
        try:
            self.parent.tag_trial_run(
                frozen.user_attrs[RUN], {"optuna.state": state.name, "optuna.reason": frozen.user_attrs.get(REASON, "")}
            )
        except Exception as error:  # the trial is ended in the study; a tracking outage only loses the tag
            log.warning("trial %d's run not tagged: %s", asked.number, one_line(error))

    def _outcome(self, result: JobReturn) -> tuple[TrialState, Any, Optional[str]]:
        """The state, values and reason of a trial from what its job returned or raised."""
        if result.status == JobStatus.COMPLETED:
            returned = result.return_value
            try:
                values = [float(returned)] if len(self.directions) == 1 else [float(v) for v in returned]
            except (TypeError, ValueError):
                wanted = "a number" if len(self.directions) == 1 else f"{len(self.directions)} numbers"
                return TrialState.FAIL, None, f"the task returned {returned!r}, not {wanted}"
            if len(values) != len(self.directions):
                return (
                    TrialState.FAIL,
                    None,
                    f"the task returned {len(values)} values for {len(self.directions)} objectives",
                )
            return TrialState.COMPLETE, values, None
        try:
            _ = result.return_value  # raises the job's exception
            return TrialState.FAIL, None, "the job failed"
        except optuna.TrialPruned as error:
            return TrialState.PRUNED, None, f"pruned: {error}" if str(error) else "pruned"
        except Exception as error:
            return TrialState.FAIL, None, one_line(error)
