"""The sweep: settings and objectives, the search space checked before any trial, the study and
(opted in by hydra.sweeper.mlflow) its one MLflow parent run, then this worker's loop (workers.py),
the extra worker processes (spawn.py) and the report (report.py). It reads only hydra.* keys of the
app's config: a job reaches its trial through trial.py.

The study that the first worker creates holds the id of the sweep's one MLflow parent run; the one
worker that finds the budget reached and nothing running, and wins the study's close claim, closes it.
"""

import logging
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from colorize import sweeping
from colorize.errors import ColorizeError, one_line
from hydra_plugins.colorize_sweeper import report, sampler, space, spawn, stopping, trial, workers

log = logging.getLogger(__name__)

CHAMPION = "champion"  # the alias that hydra.sweeper.register points at the best trial's model version
PASSWORD = re.compile(r"(//[^:/@]*:)[^@]+@")  # the user may be empty: postgresql://:pw@host/db
PARENT_WAIT_S = 60  # how long a worker waits for the creating worker to store the parent run's id
CLOSED = "colorize.parent_closed"  # study system attribute prefix of the close claim
ADOPTED = "colorize.parent_adopted"  # study system attribute: who makes the parent when its creator died
ENQUEUED = "colorize.enqueued"  # study system attribute: hydra.sweeper.enqueue was done; trial user attribute: an enqueued trial
INTERRUPTED_EXIT = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)


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
        trial_id: Optional[int] = None,  # a job's own key (trial.py); the sweeper sets it, never reads it
        metric_names: Optional[Any] = None,
        stop: Optional[DictConfig] = None,
        enqueue: Optional[ListConfig] = None,
    ) -> None:
        self.sampler_config = sampler
        self.pruner_config = pruner
        given = direction if isinstance(direction, (list, tuple, ListConfig)) else [direction]
        self.directions = [d.name if hasattr(d, "name") else str(d) for d in given]
        named = metric_names if isinstance(metric_names, (list, tuple, ListConfig)) else [metric_names]
        self.metric_names = None if metric_names is None else [str(name) for name in named]
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params or {}
        self.custom_search_space = custom_search_space
        self.mlflow = mlflow
        self.heartbeat_interval = heartbeat_interval
        self.worker = worker
        self.check = check
        self.register = register
        self.stop = stop or {}
        self.enqueue = [] if enqueue is None else OmegaConf.to_container(enqueue, resolve=True)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM (scancel, kill) ends trials and the parent run as Ctrl-C does
        try:
            self._sweep(arguments)
        except ColorizeError as error:
            raise SystemExit(f"colorize: error: {error}") from None
        except KeyboardInterrupt as error:
            if self.worker == 0:  # the first process speaks for its workers, which stop with it
                print(f"colorize: interrupted ({str(error) or 'Ctrl-C'})", file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT) from None

    def _sweep(self, arguments: list[str]) -> None:
        self._check_settings()
        extend = self._extender()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        searched, fixed = space.parse(dict(self.params), arguments, parser, allow_empty=extend is not None)
        sampler.check_fit(self.sampler_config._target_, searched, len(self.directions))
        first = space.enqueued(self.enqueue, searched)
        if len(first) > self.n_trials:
            raise ColorizeError(f"hydra.sweeper.enqueue holds {len(first)} settings, more than n_trials={self.n_trials}")
        self._check_points(searched, fixed, first)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun(sweep_dir / "multirun.yaml")

        storage = optuna.storages.InMemoryStorage() if self.storage_url is None else sweeping.open_storage(self.storage_url)
        study, created = self._study(storage, searched)
        name = study.study_name
        # Claimed before enqueuing: once per study, whichever worker or rerun comes first.
        if first and workers.claim(storage, study._study_id, ENQUEUED):
            for point in first:
                study.enqueue_trial(point, user_attrs={ENQUEUED: True})
            log.info("study %s: %d enqueued settings go first", name, len(first))
        if self.storage_url is None:
            trial.MEMORY[name] = storage  # jobs in this process reach it through trial.current()
        worker = workers.Worker(
            study, storage, searched, self.n_trials, self.max_failure_rate, self.heartbeat_interval, self._lost,
            None if extend is None else (lambda asked: extend(self.config, asked)), self.rule,
        )
        finished = worker.counts()[0]
        parent, reopened_from = self._parent_run(study, storage, created, searched, fixed, will_run=finished < self.n_trials)
        where = "memory" if self.storage_url is None else masked(self.storage_url)
        log.info("study %s in %s: %d of %d trials run; sweep dir %s", name, where, finished, self.n_trials, sweep_dir)
        processes = []
        if self.worker == 0 and self.n_jobs > 1:
            devices, threads = spawn.cuda_devices(), spawn.thread_share(self.n_jobs)
            spawn.pin_this_process(devices, threads)
            processes = spawn.start(self.n_jobs, sweep_dir, self.hydra_context, self.config, self.task_function, arguments, devices, threads)
        status = "FAILED"
        try:
            mine = worker.run(lambda asked: self._run_one(study, storage, asked, fixed))
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
                self._close(parent, reopened_from, study, storage, worker, status, fixed)
        if self.worker == 0:
            report.print_table(study, fixed, sweep_dir, self.n_trials)
        log.info("this worker ran %d trials: %s", sum(mine.values()), ", ".join(f"{n} {s.name}" for s, n in mine.items()) or "none")
        failed = [p.args for p in processes if p.returncode != 0]
        if failed:
            raise ColorizeError(f"{len(failed)} of {len(processes)} worker processes failed (see their output above)")

    def _check_settings(self) -> None:
        if not 0 <= self.max_failure_rate <= 1:
            raise ColorizeError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} must be in [0, 1]")
        for key in ("n_trials", "n_jobs", "heartbeat_interval"):
            if getattr(self, key) < 1:
                raise ColorizeError(f"hydra.sweeper.{key}={getattr(self, key)} must be >= 1")
        wrong = [d for d in self.directions if d not in ("minimize", "maximize")]
        if wrong:
            raise ColorizeError(f"hydra.sweeper.direction: {wrong[0]} is neither minimize nor maximize")
        if self.storage_url is None and self.n_jobs > 1:
            raise ColorizeError(
                f"hydra.sweeper.n_jobs={self.n_jobs} needs a storage all workers share: set hydra.sweeper.storage "
                "(e.g. sqlite:///optuna.db); null is an in-memory study in one process"
            )
        if self.metric_names is not None and len(self.metric_names) != len(self.directions):
            raise ColorizeError(
                f"hydra.sweeper.metric_names names {len(self.metric_names)} objectives ({', '.join(self.metric_names)}) "
                f"but hydra.sweeper.direction has {len(self.directions)}: give one name per direction"
            )
        self.rule = stopping.Rule.from_settings(self.stop, self.directions)
        if len(self.directions) > 1 and self.register is not None:
            raise ColorizeError(
                f"hydra.sweeper.register={self.register} registers the best trial's model, and a study of "
                f"{len(self.directions)} objectives has a Pareto front instead: register a front member with tracking.register"
            )
        if len(self.directions) > 1 and not self.pruner_config._target_.endswith("NopPruner"):
            raise ColorizeError(
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
            raise ColorizeError(f"hydra.sweeper.custom_search_space={self.custom_search_space}: {one_line(error)}") from None

    def _check_points(self, searched: dict[str, BaseDistribution], fixed: dict[str, str], first: list[dict[str, Any]]) -> None:
        """Compose the job config at the space's edges and at the enqueued settings with the fixed
        overrides, as the launcher will, and pass it to hydra.sweeper.check: a value no trial can use
        stops the sweep before the first."""
        check = get_method(self.check) if self.check else None
        for point in [*space.edge_points(searched), *first]:
            given = space.overrides(point)
            try:
                job = self.hydra_context.config_loader.load_sweep_config(self.config, [*fixed.values(), *given])
            except Exception as error:
                raise ColorizeError(f"the sweep cannot start: {one_line(error)} (at {' '.join(given)})") from None
            if check is None:
                continue
            try:
                check(job)
            except Exception as error:
                raise ColorizeError(f"the sweep cannot start: {error} (hydra.sweeper.check={self.check} at {' '.join(given)})") from None

    def _save_multirun(self, path: Path) -> None:
        """Hydra's multirun.yaml, passwords masked. A literal password in the storage URL still reaches
        each trial's .hydra/hydra.yaml, which the job needs to reach its trial: an ${oc.env:...} does not."""
        raw = OmegaConf.to_container(self.config.hydra.sweeper, resolve=False)["storage"]
        if raw is not None and masked(raw) != raw:
            log.warning(
                "hydra.sweeper.storage holds a password in clear: masked in logs and multirun.yaml, but written to each trial's "
                ".hydra/hydra.yaml; 'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' leaves no trace of it"
            )
        path.write_text("\n".join(masked(line) for line in OmegaConf.to_yaml(self.config).splitlines()) + "\n")

    def _study(self, storage: optuna.storages.BaseStorage, searched: dict) -> tuple[optuna.Study, bool]:
        """The study and whether this worker created it."""
        pruner = instantiate(self.pruner_config)
        chosen, grid_size = sampler.build(self.sampler_config, searched)
        if grid_size is not None and grid_size < self.n_trials:
            log.info("the grid has %d points: n_trials %d -> %d", grid_size, self.n_trials, grid_size)
            self.n_trials = grid_size
        name = self.study_name
        try:
            # Only one worker can create the study (unique name): that one creates the parent run.
            study = optuna.create_study(storage=storage, study_name=name, sampler=chosen, pruner=pruner, directions=self.directions)
            created = True
            if self.metric_names is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable in use since Optuna 3.2
                    study.set_metric_names(self.metric_names)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, sampler=chosen, pruner=pruner)
            created = False
            found = [d.name.lower() for d in study.directions]
            if found != self.directions:
                raise ColorizeError(
                    f"study {name} in {masked(self.storage_url)} is to {' and '.join(found)}, "
                    f"not {' and '.join(self.directions)}: set hydra.sweeper.study_name to start a new one"
                ) from None
            kept = study.metric_names
            if self.metric_names is not None and kept is not None and kept != self.metric_names:
                raise ColorizeError(
                    f"study {name} in {masked(self.storage_url)} optimises {', '.join(kept)}, "
                    f"not {', '.join(self.metric_names)}: set hydra.sweeper.study_name to start a new one"
                ) from None
        study.set_user_attr(trial.PRUNER, OmegaConf.to_container(self.pruner_config, resolve=True))
        return study, created

    def _parent_run(
        self, study: optuna.Study, storage: optuna.storages.BaseStorage, created: bool, searched: dict, fixed: dict, will_run: bool
    ) -> tuple[Optional[Any], Optional[str]]:
        """The sweep's parent run (hydra.sweeper.mlflow), and the status it had when this worker
        reopened it (None: not reopened)."""
        if self.mlflow is None:
            return None, None
        from colorize import tracking  # mlflow: seconds of imports, only for sweeps that opt in

        uri, name = self.mlflow.tracking_uri, study.study_name
        tracking.check_server(uri)
        if not created:
            deadline = time.monotonic() + PARENT_WAIT_S  # the creating worker sets it right after creating the study
            while sweeping.PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                time.sleep(0.5)
            run_id = study.user_attrs.get(sweeping.PARENT_RUN)
            if run_id is None and not workers.claim(storage, study._study_id, ADOPTED):
                # The creating worker died before storing the id, and another waiting worker makes or
                # adopts the parent: wait for that one's id rather than start a second parent.
                deadline = time.monotonic() + PARENT_WAIT_S
                while sweeping.PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                    time.sleep(0.5)
                run_id = study.user_attrs.get(sweeping.PARENT_RUN)
            if run_id is None:
                # This worker won the claim: the dead creator's run, if it got that far, is the parent.
                run_id = tracking.find_parent(uri, self.mlflow.experiment, name)
                if run_id is not None:
                    study.set_user_attr(sweeping.PARENT_RUN, run_id)
            if run_id is not None:
                parent = tracking.ParentRun(uri, run_id)
                if not will_run:
                    return parent, None
                before = parent.reopen()
                if before is not None:
                    return parent, before if before != "RUNNING" else None
                log.warning("parent run %s of study %s is gone from %s: starting a new one", run_id, name, masked(uri))
        params = {
            "sampler": self.sampler_config._target_.rsplit(".", 1)[-1],
            "pruner": self.pruner_config._target_.rsplit(".", 1)[-1],
            "direction": ",".join(self.directions),
            **({"metric_names": ",".join(self.metric_names)} if self.metric_names else {}),
            **{f"space.{key}": repr(dist) for key, dist in searched.items()},
            **{f"fixed.{key}": value for key, value in fixed.items()},
        }
        tags = {"optuna.study": name, "optuna.storage": self.storage_url or "memory"}
        parent = tracking.ParentRun.create(uri, self.mlflow.experiment, f"sweep-{name}", params, tags)
        study.set_user_attr(sweeping.PARENT_RUN, parent.run_id)
        return parent, None

    def _close(
        self, parent: Any, reopened_from: Optional[str], study: optuna.Study, storage: optuna.storages.RDBStorage,
        worker: workers.Worker, status: str, fixed: dict,
    ) -> None:
        """End the parent run once: by the one worker that claims the close of the study at its present
        size, with nothing running. A worker stopped early (failures, Ctrl-C) closes it only if
        nothing else runs; one that reopened a closed parent and lost the claim closes it again."""
        try:
            run, running = worker.counts()
            if running > 0:
                return  # other workers' trials run: the last of them closes it
            # Keyed by the trials run so far, so that a resume that runs more closes it again; not by
            # all trials: one put back to WAITING after this close must not make a second one.
            won = workers.claim(storage, study._study_id, f"{CLOSED}.{run}")
            if won and status == "FINISHED":
                summary = report.summarize(study, fixed, self.n_trials)
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
        if self.register is None or self.mlflow is None:
            return
        from colorize import tracking

        best = report.best_first(study)[0]
        run_id = best.user_attrs.get(sweeping.RUN)
        version = tracking.register_model(self.mlflow.tracking_uri, run_id, self.register, CHAMPION) if run_id else None
        if version is None:
            log.warning("hydra.sweeper.register=%s: the best trial %d logged no model; nothing registered", self.register, best.number)
            return
        log.info("registered the best trial %d's model as models:/%s/%s, alias %s", best.number, self.register, version, CHAMPION)
        parent.summary({}, {"best.model": f"models:/{self.register}/{version}"}, {}, {})

    def _lost(self, lost: FrozenTrial) -> None:
        """A trial whose worker stopped beating, now FAIL: close its MLflow run too."""
        run_id, reason = lost.user_attrs.get(sweeping.RUN), lost.user_attrs.get(sweeping.REASON, "")
        log.warning("trial %d marked FAIL: %s", lost.number, reason)
        if run_id and self.mlflow is not None:
            from colorize import tracking

            # Apart: this runs in a heartbeat thread, which a tracking-server outage (MLflow retries
            # for minutes) must not stop, or this worker's own trial would go stale too.
            tags = {"optuna.state": "FAIL", "optuna.reason": reason}
            threading.Thread(target=tracking.end_lost_run, args=(self.mlflow.tracking_uri, run_id, tags), daemon=True).start()

    def _run_one(self, study: optuna.Study, storage: optuna.storages.BaseStorage, asked: optuna.Trial, fixed: dict) -> TrialState:
        trial_id = asked._trial_id
        overrides = [
            *fixed.values(),
            *space.overrides(asked.params),
            # The job reaches its trial from these (trial.current()), in any process.
            f"hydra.sweeper.trial_id={trial_id}",
            f"hydra.sweeper.study_name={space.quote(study.study_name)}",
        ]
        [result] = self.launcher.launch([overrides], initial_job_idx=asked.number)
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            # The job ended without settling its trial (an app that only returns its objective, or
            # an error before it reported): settle it from what the launcher returned.
            self._settle(storage, trial_id, result)
        frozen = storage.get_trial(trial_id)
        reason = frozen.user_attrs.get(sweeping.REASON, "")
        value = ", ".join(f"{v:.4f}" for v in frozen.values) if frozen.state == TrialState.COMPLETE else reason
        log.info("trial %d %s: %s  (%s)", frozen.number, frozen.state.name, value, " ".join(f"{k}={v}" for k, v in frozen.params.items()))
        return frozen.state

    def _settle(self, storage: optuna.storages.BaseStorage, trial_id: int, result: JobReturn) -> None:
        if result.status == JobStatus.COMPLETED:
            returned = result.return_value
            try:
                values = [float(returned)] if len(self.directions) == 1 else [float(v) for v in returned]
            except (TypeError, ValueError):
                wanted = "a number" if len(self.directions) == 1 else f"{len(self.directions)} numbers"
                sweeping.settle(storage, trial_id, TrialState.FAIL, reason=f"the task returned {returned!r}, not {wanted}")
                return
            if len(values) != len(self.directions):
                reason = f"the task returned {len(values)} values for {len(self.directions)} objectives"
                sweeping.settle(storage, trial_id, TrialState.FAIL, reason=reason)
                return
            sweeping.settle(storage, trial_id, TrialState.COMPLETE, values)
            return
        try:
            result.return_value  # raises the job's exception
            reason = "the job failed"
        except optuna.TrialPruned as error:
            sweeping.settle(storage, trial_id, TrialState.PRUNED, reason=f"pruned: {error}" if str(error) else "pruned")
            return
        except Exception as error:
            reason = one_line(error)
        sweeping.settle(storage, trial_id, TrialState.FAIL, reason=reason)


def masked(url: str) -> str:
    return PASSWORD.sub(r"\1***@", url)
