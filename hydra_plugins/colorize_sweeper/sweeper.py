"""The sweep: settings and objective, the search space checked before any trial, the study and its
one MLflow parent run, then this worker's loop (workers.py) and the report (report.py).

The study that the first worker creates holds the id of the sweep's one MLflow parent run; the one
worker that finds the budget reached and nothing running, and wins the study's close claim, closes it.
"""

import logging
import threading
import time
from pathlib import Path
from typing import Any, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from colorize import sweeping, tracking
from colorize.errors import ColorizeError, one_line
from hydra_plugins.colorize_sweeper import report, sampler, space, workers

log = logging.getLogger(__name__)

CHAMPION = "champion"  # the alias that hydra.sweeper.register points at the best trial's model version
PARENT_WAIT_S = 60  # how long a worker waits for the creating worker to store the parent run's id
CLOSED = "colorize.parent_closed"  # study system attribute prefix of the close claim


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
        check: Optional[str] = None,
        register: Optional[str] = None,
    ) -> None:
        self.sampler_config = sampler
        self.pruner_config = pruner
        self.direction = direction.name if hasattr(direction, "name") else direction
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params or {}
        self.heartbeat_interval = heartbeat_interval
        self.worker = worker
        self.check = check
        self.register = register

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
        self._check_settings()
        direction = self._direction()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        searched, fixed = space.parse(dict(self.params), arguments, parser)
        self._check_points(searched, fixed)
        name = self.study_name or self.config.hydra.runtime.choices.get("sweep") or "colorize"
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun(sweep_dir / "multirun.yaml")

        storage = sweeping.open_storage(self.storage_url)
        study, created = self._study(storage, name, searched, direction)
        worker = workers.Worker(study, storage, searched, self.n_trials, self.max_failure_rate, self.heartbeat_interval, self._lost)
        finished = worker.counts()[0]
        parent, reopened_from = self._parent_run(study, created, name, searched, fixed, direction, will_run=finished < self.n_trials)
        log.info(
            "study %s in %s: %d of %d trials finished; sweep dir %s",
            name, tracking.hide_password(self.storage_url), finished, self.n_trials, sweep_dir,
        )
        processes = workers.start_processes(self.n_jobs, sweep_dir) if self.worker == 0 and self.n_jobs > 1 else []
        status = "FAILED"
        try:
            mine = worker.run(lambda trial: self._run_one(study, storage, trial, fixed))
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
            if parent is not None:
                self._close(parent, reopened_from, study, storage, worker, status, fixed)
        if self.worker == 0:
            report.print_table(study, fixed, sweep_dir)
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

    def _direction(self) -> str:
        """The task's declared objective.direction; hydra.sweeper.direction may repeat it, not contradict it."""
        declared = OmegaConf.select(self.config, "objective.direction")
        if self.direction is not None and declared is not None and self.direction != declared:
            metric = OmegaConf.select(self.config, "objective.metric")
            raise ColorizeError(
                f"hydra.sweeper.direction={self.direction} contradicts objective.direction={declared} (of {metric}): "
                "drop hydra.sweeper.direction, the sweep follows the objective"
            )
        return self.direction or declared or "minimize"

    def _check_points(self, searched: dict[str, BaseDistribution], fixed: dict[str, str]) -> None:
        """Compose the job config at the space's edges with the fixed overrides, as the launcher will,
        and pass it to hydra.sweeper.check: a value no trial can use stops the sweep before the first."""
        check = get_method(self.check) if self.check else None
        for point in space.edge_points(searched):
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
        if tracking.hide_password(raw) != raw:
            log.warning(
                "hydra.sweeper.storage holds a password in clear: masked in logs and multirun.yaml, but written to each trial's "
                ".hydra/hydra.yaml; 'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' leaves no trace of it"
            )
        path.write_text("\n".join(tracking.hide_password(line) for line in OmegaConf.to_yaml(self.config).splitlines()) + "\n")

    def _study(self, storage: optuna.storages.RDBStorage, name: str, searched: dict, direction: str) -> tuple[optuna.Study, bool]:
        """The study and whether this worker created it."""
        pruner = instantiate(self.pruner_config)
        chosen, grid_size = sampler.build(self.sampler_config, searched)
        if grid_size is not None and grid_size < self.n_trials:
            log.info("the grid has %d points: n_trials %d -> %d", grid_size, self.n_trials, grid_size)
            self.n_trials = grid_size
        try:
            # Only one worker can create the study (unique name): that one creates the parent run.
            study = optuna.create_study(storage=storage, study_name=name, sampler=chosen, pruner=pruner, direction=direction)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, sampler=chosen, pruner=pruner)
            created = False
            if study.direction.name.lower() != direction:
                raise ColorizeError(
                    f"study {name} in {tracking.hide_password(self.storage_url)} is to {study.direction.name.lower()}, "
                    f"not {direction}: set hydra.sweeper.study_name to start a new one"
                ) from None
        study.set_user_attr(sweeping.PRUNER, OmegaConf.to_container(self.pruner_config, resolve=True))
        return study, created

    def _parent_run(
        self, study: optuna.Study, created: bool, name: str, searched: dict, fixed: dict, direction: str, will_run: bool
    ) -> tuple[Optional[tracking.ParentRun], Optional[str]]:
        """The sweep's parent run, and the status it had when this worker reopened it (None: not reopened)."""
        uri = OmegaConf.select(self.config, "tracking.uri")
        experiment = OmegaConf.select(self.config, "tracking.experiment")
        if uri is None or experiment is None:
            return None, None
        tracking.check_server(uri)
        if not created:
            deadline = time.monotonic() + PARENT_WAIT_S  # the creating worker sets it right after creating the study
            while sweeping.PARENT_RUN not in study.user_attrs and time.monotonic() < deadline:
                time.sleep(0.5)
            run_id = study.user_attrs.get(sweeping.PARENT_RUN)
            if run_id is not None:
                parent = tracking.ParentRun(uri, run_id)
                if not will_run:
                    return parent, None
                before = parent.reopen()
                if before is not None:
                    return parent, before if before != "RUNNING" else None
                log.warning("parent run %s of study %s is gone from %s: starting a new one", run_id, name, tracking.hide_password(uri))
        params = {
            "sampler": self.sampler_config._target_.rsplit(".", 1)[-1],
            "pruner": self.pruner_config._target_.rsplit(".", 1)[-1],
            "direction": direction,
            **{f"space.{key}": repr(dist) for key, dist in searched.items()},
            **{f"fixed.{key}": value for key, value in fixed.items()},
        }
        tags = {"optuna.study": name, "optuna.storage": self.storage_url}
        parent = tracking.ParentRun.create(uri, experiment, f"sweep-{name}", params, tags)
        study.set_user_attr(sweeping.PARENT_RUN, parent.run_id)
        return parent, None

    def _close(
        self, parent: tracking.ParentRun, reopened_from: Optional[str], study: optuna.Study, storage: optuna.storages.RDBStorage,
        worker: workers.Worker, status: str, fixed: dict,
    ) -> None:
        """End the parent run once: by the one worker that claims the close of the study at its present
        size, with nothing running. A worker stopped early (failures, Ctrl-C) closes it only if
        nothing else runs; one that reopened a closed parent and lost the claim closes it again."""
        try:
            if worker.counts()[1] > 0:
                return  # other workers' trials run: the last of them closes it
            won = workers.claim(storage, study._study_id, f"{CLOSED}.{len(study.get_trials(deepcopy=False))}")
            if won and status == "FINISHED":
                summary = report.summarize(study, fixed)
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

    def _register_best(self, parent: tracking.ParentRun, study: optuna.Study) -> None:
        """hydra.sweeper.register: the best trial's logged model as the next version of that registered
        model, alias champion. A task that logs no model is told in a warning; nothing is registered."""
        if self.register is None:
            return
        best = report.best_first(study)[0]
        run_id = best.user_attrs.get(sweeping.RUN)
        version = tracking.register_model(OmegaConf.select(self.config, "tracking.uri"), run_id, self.register, CHAMPION) if run_id else None
        if version is None:
            log.warning("hydra.sweeper.register=%s: the best trial %d logged no model; nothing registered", self.register, best.number)
            return
        log.info("registered the best trial %d's model as models:/%s/%s, alias %s", best.number, self.register, version, CHAMPION)
        parent.summary({}, {"best.model": f"models:/{self.register}/{version}"}, {}, {})

    def _lost(self, trial: FrozenTrial) -> None:
        """A trial whose worker stopped beating, now FAIL: close its MLflow run too."""
        run_id, uri = trial.user_attrs.get(sweeping.RUN), OmegaConf.select(self.config, "tracking.uri")
        reason = trial.user_attrs.get(sweeping.REASON, "")
        log.warning("trial %d marked FAIL: %s", trial.number, reason)
        if run_id and uri:
            # Apart: this runs in a heartbeat thread, which a tracking-server outage (MLflow retries
            # for minutes) must not stop, or this worker's own trial would go stale too.
            tags = {"optuna.state": "FAIL", "optuna.reason": reason}
            threading.Thread(target=tracking.end_lost_run, args=(uri, run_id, tags), daemon=True).start()

    def _run_one(self, study: optuna.Study, storage: optuna.storages.RDBStorage, trial: optuna.Trial, fixed: dict) -> TrialState:
        trial_id = trial._trial_id  # the job reaches its trial by this id, from any process
        overrides = [
            *fixed.values(),
            *space.overrides(trial.params),
            "trial.storage=${hydra:sweeper.storage}",  # resolved in the job: launcher logs never show a password
            f"trial.study={space.quote(study.study_name)}",
            f"trial.id={trial_id}",
        ]
        [result] = self.launcher.launch([overrides], initial_job_idx=trial.number)
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            # The job ended without telling Optuna (an error before training, or a task that does
            # not report): settle it from what the launcher returned.
            self._settle(storage, trial_id, result)
        frozen = storage.get_trial(trial_id)
        reason = frozen.user_attrs.get(sweeping.REASON, "")
        value = f"{frozen.value:.4f}" if frozen.state == TrialState.COMPLETE else reason
        log.info("trial %d %s: %s  (%s)", frozen.number, frozen.state.name, value, " ".join(f"{k}={v}" for k, v in frozen.params.items()))
        return frozen.state

    @staticmethod
    def _settle(storage: optuna.storages.RDBStorage, trial_id: int, result: JobReturn) -> None:
        if result.status == JobStatus.COMPLETED:
            try:
                value = float(result.return_value)
            except (TypeError, ValueError):
                sweeping.settle(storage, trial_id, TrialState.FAIL, reason=f"the task returned {result.return_value!r}, not a number")
                return
            sweeping.settle(storage, trial_id, TrialState.COMPLETE, value)
            return
        try:
            result.return_value  # raises the job's exception
            reason = "the job failed"
        except Exception as error:
            reason = one_line(error)
        sweeping.settle(storage, trial_id, TrialState.FAIL, reason=reason)
