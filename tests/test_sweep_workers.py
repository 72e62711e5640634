"""The worker loop in-process: workers are sweepers made from the real composed config, run in threads
on one SQLite study in tmp_path; a stand-in launcher runs a trivial task in the worker's thread, and a
stand-in parent run records what happens to it. Concurrency is ordered with barriers and events."""

import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from optuna.trial import TrialState

from colorize import secrets
from colorize.config import register
from hydra_plugins.hydra_optuna_async_sweeper import _parent as parent
from hydra_plugins.hydra_optuna_async_sweeper import _stopping as stopping
from hydra_plugins.hydra_optuna_async_sweeper._study import claim
from hydra_plugins.hydra_optuna_async_sweeper._sweeper import CLOSED
from tests.conftest import PROJECT

Task = Callable[[dict[str, str]], float]


def lr_score(params: dict[str, str]) -> float:
    return -abs(float(params["optimizer.lr"]) - 3e-3)


class Launcher:
    """Hydra's launcher interface; the job is task(overrides as a dict) in this thread."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def launch(self, job_overrides: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        [overrides] = job_overrides
        result = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
        try:
            result.return_value = self.task(dict(o.split("=", 1) for o in overrides))
        except Exception as error:
            result.status, result.return_value = JobStatus.FAILED, error
        return [result]


class Parent:
    """The sweeper's ParentRun interface, recording what happens to the one parent run."""

    events: list[str] = []

    def __init__(self, uri: str, run_id: str) -> None:
        self.run_id = run_id

    @classmethod
    def create(cls, uri: str, experiment: str, run_name: str, params: Any, tags: Any) -> "Parent":
        cls.events.append("create")
        return cls(uri, "parent-run")

    def reopen(self) -> str:
        self.events.append("reopen")
        return "RUNNING"

    def summary(self, **kwargs: Any) -> None:
        self.events.append("summary")

    def tag_trial_run(self, run_id: str, tags: Any) -> None:
        pass

    def end(self, status: str) -> None:
        self.events.append(f"end {status}")


class Command:
    """A sweeper as Hydra runs it: sweep() gets the command line's overrides but Hydra's own."""

    def __init__(self, sweeper: Any, arguments: list[str]) -> None:
        self.sweeper = sweeper
        self.arguments = arguments

    def sweep(self, extra: list[str]) -> None:
        self.sweeper.sweep(self.arguments + extra)


@pytest.fixture
def make_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """make_worker(*overrides, task=...) -> a sweeper of `python -m colorize.train -m sweep=smoke ...`."""
    register()
    monkeypatch.setattr(parent, "ParentRun", Parent)
    Parent.events = []
    with initialize_config_dir(str(PROJECT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def make(*overrides: str, task: Task = lr_score, sweep: str = "smoke") -> Any:
            given = [
                *([f"sweep={sweep}"] if sweep else []),
                f"paths.root_dir={tmp_path}",
                "hydra.sweep.dir=" + str(tmp_path / "sweeps" / "run"),
                *overrides,
            ]
            cfg = compose("train", given, return_hydra_config=True)
            context = HydraContext(config_loader=loader, callbacks=Callbacks(cfg))
            sweeper = Plugins.instance().instantiate_sweeper(
                hydra_context=context, task_function=lambda c: None, config=cfg
            )
            sweeper.sweeper.launcher = Launcher(task)
            return Command(sweeper, [o for o in given if not o.startswith("hydra")])

        yield make
    GlobalHydra.instance().clear()


def storage_url(root: Path) -> str:
    (root / "sweeps").mkdir(exist_ok=True)
    return f"sqlite:///{root}/sweeps/optuna.db"


def study(root: Path, name: str = "smoke") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/sweeps/optuna.db")


def run_together(
    sweepers: list[Any], monkeypatch: pytest.MonkeyPatch, arguments: tuple[str, ...] = ()
) -> list[BaseException | None]:
    """Each sweeper in its thread; every one has opened the study before any asks its first trial."""
    barrier = threading.Barrier(len(sweepers))
    passed: set[int] = set()
    ask = optuna.Study.ask

    def ask_together(self: optuna.Study, *args: Any, **kwargs: Any) -> optuna.Trial:
        if threading.get_ident() not in passed:
            passed.add(threading.get_ident())
            barrier.wait(timeout=60)
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", ask_together)
    errors: list[BaseException | None] = [None] * len(sweepers)

    def work(i: int) -> None:
        try:
            sweepers[i].sweep(list(arguments))
        except BaseException as error:
            errors[i] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sweepers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker is still waiting"
    return errors


def test_workers_started_together_on_a_seeded_study_propose_distinct_values(
    tmp_path: Path, make_worker, monkeypatch
) -> None:
    # Four commands of the SLURM-array recipe: all worker 0, sampler.seed 0, started at one instant.
    workers = [make_worker("hydra.sweeper.n_trials=4") for _ in range(4)]
    assert run_together(workers, monkeypatch) == [None] * 4
    found = study(tmp_path).get_trials()
    assert [t.state for t in found] == [TrialState.COMPLETE] * 4
    assert len({tuple(sorted(t.params.items())) for t in found}) == 4, [t.params for t in found]


def test_a_seeded_worker_is_reproducible_and_a_resumed_study_goes_on(tmp_path: Path, make_worker) -> None:
    make_worker("hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=a").sweep([])
    make_worker("hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=b").sweep([])
    first = [t.params for t in study(tmp_path, "a").get_trials()]
    assert first == [t.params for t in study(tmp_path, "b").get_trials()]  # one seeded worker: same values each run
    make_worker("hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=a").sweep([])  # the README's resume
    resumed = [t.params for t in study(tmp_path, "a").get_trials()]
    assert resumed[:2] == first and all(p not in first for p in resumed[2:]), resumed


def test_a_running_trial_that_never_beat_is_failed_and_the_sweep_ends(tmp_path: Path, make_worker) -> None:
    # A worker died between asking its trial and its first heartbeat, a minute ago.
    worker = make_worker("hydra.sweeper.n_trials=1", "hydra.sweeper.heartbeat_interval=1")
    created = optuna.create_study(study_name="smoke", storage=storage_url(tmp_path), direction="maximize")
    created.set_user_attr("mlflow_parent_run_id", "parent-run")  # the dead worker created the study and its parent run
    orphan = created.ask()
    with sqlite3.connect(tmp_path / "sweeps" / "optuna.db") as db:
        db.execute(
            "UPDATE trials SET datetime_start = datetime(datetime_start, '-60 seconds') WHERE trial_id = ?",
            (orphan._trial_id,),
        )
    thread = threading.Thread(target=worker.sweep, args=([],), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the sweep still waits on a trial that never beat"
    found = study(tmp_path).get_trials()
    assert [t.state for t in found] == [TrialState.FAIL, TrialState.COMPLETE]
    assert found[0].user_attrs["reason"] == "its worker stopped: no heartbeat for 2 s"


def test_a_requeued_trial_is_not_failed_when_asked_again(tmp_path: Path, make_worker, monkeypatch) -> None:
    # Trial 0 went back to WAITING (over budget) long ago, keeping its last heartbeat row.
    storage = optuna.storages.RDBStorage(storage_url(tmp_path))
    created = optuna.create_study(study_name="smoke", storage=storage, direction="maximize")
    created.set_user_attr("mlflow_parent_run_id", "parent-run")
    requeued = created.ask()
    storage.record_heartbeat(requeued._trial_id)
    storage.set_trial_state_values(requeued._trial_id, TrialState.WAITING)
    with sqlite3.connect(tmp_path / "sweeps" / "optuna.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour')")
        db.execute("UPDATE trials SET datetime_start = datetime(datetime_start, '-1 hour')")
    # While the asker runs the re-asked trial, before its first heartbeat, the other worker looks for
    # stale trials and then waits on the running trial (or, if it found trial 0 stale, runs one itself and ends).
    other_waits = threading.Event()
    sleep = __import__("time").sleep

    def sleep_noting(seconds: float) -> None:
        if threading.current_thread() is other_thread:
            other_waits.set()
        sleep(min(seconds, 0.2))

    def task_while_the_other_looks(params: dict[str, str]) -> float:
        other_thread.start()
        while not other_waits.wait(0.05) and other_thread.is_alive():
            pass
        return lr_score(params)

    asker = make_worker(
        "hydra.sweeper.n_trials=1", "hydra.sweeper.heartbeat_interval=1", task=task_while_the_other_looks
    )
    other = make_worker("hydra.sweeper.n_trials=1", "hydra.sweeper.heartbeat_interval=1")
    other_thread = threading.Thread(target=other.sweep, args=([],), daemon=True)
    monkeypatch.setattr("time.sleep", sleep_noting)
    asker.sweep([])
    other_thread.join(timeout=60)
    assert not other_thread.is_alive()
    found = study(tmp_path).get_trials()
    assert found[0].state == TrialState.COMPLETE, [(t.number, t.state.name, t.user_attrs) for t in found]
    assert len(found) == 1


def test_the_failure_budget_counts_every_workers_failures(tmp_path: Path, make_worker) -> None:
    def crash(params: dict[str, str]) -> float:
        raise RuntimeError("out of memory")

    settings = ["hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=0.5"]  # one failure tolerated
    with pytest.raises(SystemExit):
        make_worker(*settings, task=crash).sweep([])
    assert len(study(tmp_path).get_trials()) == 2
    with pytest.raises(SystemExit) as stopped:  # a second worker: the study's failures count, not its own
        make_worker(*settings, task=crash).sweep([])
    assert str(stopped.value) == (
        "hydra-optuna-async-sweeper: error: 2 failed trials in study smoke (all workers), more than hydra.sweeper.max_failure_rate=0.5 "
        "of n_trials=2 allows; last: trial 1: RuntimeError: out of memory"
    )
    assert len(study(tmp_path).get_trials()) == 2


def test_colorize_sweeps_follow_the_declared_objective(tmp_path: Path, make_worker) -> None:
    # The plugin's own default is hydra-optuna-sweeper's (minimize); colorize's sweep configs pass
    # objective.direction through, so a PSNR sweep maximises and a loss sweep minimises.
    make_worker("hydra.sweeper.n_trials=1").sweep([])
    assert study(tmp_path).direction == optuna.study.StudyDirection.MAXIMIZE  # objective.direction: val_psnr
    chosen = ["hydra.sweeper.study_name=by_loss", "objective.metric=val_loss", "objective.direction=minimize"]
    make_worker("hydra.sweeper.n_trials=1", *chosen).sweep([])
    assert study(tmp_path, "by_loss").direction == optuna.study.StudyDirection.MINIMIZE


def test_a_study_kept_with_another_direction_stops_with_one_line(tmp_path: Path, make_worker) -> None:
    make_worker("hydra.sweeper.n_trials=1").sweep([])
    with pytest.raises(SystemExit) as stopped:
        make_worker("hydra.sweeper.n_trials=2", "objective.direction=minimize").sweep([])
    assert str(stopped.value) == (
        f"hydra-optuna-async-sweeper: error: study smoke in sqlite:///{tmp_path}/sweeps/optuna.db is to maximize, not minimize: "
        "set hydra.sweeper.study_name to start a new one"
    )


def test_two_first_workers_close_the_parent_run_once(tmp_path: Path, make_worker, monkeypatch) -> None:
    workers = [make_worker("hydra.sweeper.n_trials=2") for _ in range(2)]  # two commands, both worker 0
    assert run_together(workers, monkeypatch) == [None, None]
    assert Parent.events.count("create") == 1
    assert [e for e in Parent.events if e.startswith(("end", "summary"))] == ["summary", "end FINISHED"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.width=tag(log, interval(0.5, 2.5))", "hydra-optuna-async-sweeper: error: the sweep cannot start: "),
        (
            "optimizer.lr=-1",
            "hydra-optuna-async-sweeper: error: the sweep cannot start: optimizer.lr=-1.0 must be finite and > 0 (hydra.sweeper.check=colorize.config.check at ",
        ),
    ],
)
def test_a_value_no_trial_can_use_stops_the_sweep_before_the_first(
    tmp_path: Path, make_worker, override: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_worker().sweep([override])
    assert str(stopped.value).startswith(expected) and "\n" not in str(stopped.value)
    if "width" in override:
        assert "model.width" in str(stopped.value)
    assert not (tmp_path / "sweeps" / "optuna.db").exists() or study(tmp_path).get_trials() == []


def test_passwords_are_masked_in_errors_and_multirun_yaml(tmp_path: Path, make_worker) -> None:
    assert secrets.mask("postgresql://:secret@host/db") == "postgresql://:***@host/db"
    with pytest.raises(SystemExit) as stopped:
        make_worker("hydra.sweeper.storage=postgresql://:secret@127.0.0.1:9/optuna").sweep([])
    assert str(stopped.value).startswith(
        "hydra-optuna-async-sweeper: error: Optuna storage postgresql://:***@127.0.0.1:9/optuna: "
    )
    assert "secret" not in str(stopped.value)
    saved = (tmp_path / "sweeps" / "run" / "multirun.yaml").read_text()
    assert "secret" not in saved and "postgresql://:***@127.0.0.1:9/optuna" in saved


def lr_and_width(params: dict[str, str]) -> tuple[float, float]:
    return lr_score(params), float(params["model.width"])


TWO_OBJECTIVES = ["objective.metric=[val_psnr,val_loss]", "objective.direction=[maximize,minimize]"]


SAMPLER_SETTINGS = {
    "tpe": ["hydra.sweeper.sampler.n_startup_trials=2"],  # past the random start: TPE itself proposes
    "random": [],
    "grid": [],  # over choice(1e-3, 3e-3) x width 1, 2
    "gp": ["hydra.sweeper.sampler.n_startup_trials=2"],
    "cmaes": [],  # n_startup_trials 1 already
    "nsgaii": ["hydra.sweeper.sampler.population_size=2"],
    "nsgaiii": ["hydra.sweeper.sampler.population_size=2"],
    "qmc": [],
}


@pytest.mark.parametrize(
    "sampler, objectives",
    [
        (sampler, n) for sampler in SAMPLER_SETTINGS for n in (1, 2) if (sampler, n) != ("cmaes", 2)
    ],  # refused: the test below
)
def test_every_sampler_searches_the_smoke_space_seeded(
    tmp_path: Path, make_worker, sampler: str, objectives: int
) -> None:
    chosen = [
        f"hydra/sweeper/sampler={sampler}",
        "hydra.sweeper.sampler.seed=3",
        "hydra.sweeper.n_trials=4",
        *SAMPLER_SETTINGS[sampler],
    ]
    chosen += TWO_OBJECTIVES if objectives == 2 else []
    for name in ("a", "b"):
        worker = make_worker(
            *chosen, f"hydra.sweeper.study_name={name}", task=lr_and_width if objectives == 2 else lr_score
        )
        worker.sweep(["optimizer.lr=choice(1e-3,3e-3)", "model.width=choice(1,2)"] if sampler == "grid" else [])
    found = [study(tmp_path, name).get_trials() for name in ("a", "b")]
    assert [t.state for t in found[0]] == [TrialState.COMPLETE] * 4
    assert (
        len({tuple(sorted(t.params.items())) for t in found[0]}) == 4
    )  # no point tried twice (the grid has exactly 4)
    assert [t.params for t in found[0]] == [t.params for t in found[1]]  # the seed makes it reproducible


@pytest.mark.parametrize(
    "settings, arguments, line",
    [
        (
            ["hydra/sweeper/sampler=cmaes", *TWO_OBJECTIVES],
            [],
            "hydra/sweeper/sampler=cmaes (optuna.samplers.CmaEsSampler) optimises one objective, not 2: use nsgaii, tpe or gp",
        ),
        (
            ["hydra/sweeper/sampler=cmaes"],
            ["optimizer.lr=choice(1e-3,3e-3)", "model.width=choice(1,2)"],
            "hydra/sweeper/sampler=cmaes (optuna.samplers.CmaEsSampler) searches numeric params only, and every param here is a choice "
            "(optimizer.lr, model.width): each would be drawn at random; use tpe, gp or grid",
        ),
        (
            ["hydra/sweeper/pruner=median", *TWO_OBJECTIVES],
            [],
            "hydra/sweeper/pruner: Optuna cannot prune a study of 2 objectives; use hydra/sweeper/pruner=none",
        ),
    ],
)
def test_a_sampler_that_cannot_search_the_study_stops_with_one_line(
    tmp_path: Path, make_worker, settings: list[str], arguments: list[str], line: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_worker(*settings).sweep(arguments)
    assert str(stopped.value) == f"hydra-optuna-async-sweeper: error: {line}"
    assert not (tmp_path / "sweeps" / "optuna.db").exists()  # refused before the study was made


def constant(params: dict[str, str]) -> float:
    return 1.0  # the first trial is the best; none after it improves


def test_patience_ends_the_study_and_a_larger_budget_counts_anew(tmp_path: Path, make_worker, capsys) -> None:
    make_worker("hydra.sweeper.n_trials=20", "hydra.sweeper.stop.patience=2", task=constant).sweep([])
    assert len(study(tmp_path).get_trials()) == 3  # the best, then two that did not improve on it
    reason = "2 finished trials in a row did not improve on trial 0's 1 (hydra.sweeper.stop.patience=2)"
    assert f"stopped before n_trials: {reason}" in capsys.readouterr().out
    assert stopping.kept(study(tmp_path)) == {"reason": reason, "n_trials": 20, "finished": 3}
    make_worker("hydra.sweeper.n_trials=20", task=constant).sweep(
        []
    )  # the same budget, no stop settings: the decision stands
    assert len(study(tmp_path).get_trials()) == 3 and reason in capsys.readouterr().out
    make_worker("hydra.sweeper.n_trials=21", "hydra.sweeper.stop.patience=2", task=constant).sweep(
        []
    )  # a larger budget goes on
    assert len(study(tmp_path).get_trials()) == 5


def test_a_target_ends_the_study_at_the_first_trial_that_reaches_it(tmp_path: Path, make_worker, capsys) -> None:
    values = iter([0.1, 0.3, 0.9, 0.2, 0.95, 0.99])
    make_worker("hydra.sweeper.n_trials=6", "hydra.sweeper.stop.target=0.5", task=lambda params: next(values)).sweep([])
    assert [t.value for t in study(tmp_path).get_trials()] == [0.1, 0.3, 0.9]
    assert "stopped before n_trials: trial 2 reached 0.9 (hydra.sweeper.stop.target=0.5)" in capsys.readouterr().out
    assert Parent.events[-2:] == ["summary", "end FINISHED"]


def test_two_workers_stop_on_the_decision_kept_in_the_study(tmp_path: Path, make_worker, monkeypatch) -> None:
    # One worker has the rule; the other, started without it (another machine's command), stops too.
    workers = [
        make_worker("hydra.sweeper.n_trials=30", "hydra.sweeper.stop.patience=3", task=constant),
        make_worker("hydra.sweeper.n_trials=30", task=constant),
    ]
    assert run_together(workers, monkeypatch) == [None, None]
    found = study(tmp_path).get_trials()
    complete = [t for t in found if t.state == TrialState.COMPLETE]
    decision = stopping.kept(study(tmp_path))
    # The rule's worker looks after each of its trials, while the other may have run several: the
    # decision counts 4 or more, and after that count only the other's trial in flight then, and one
    # it asked before the decision was kept, finish.
    assert "finished trials in a row did not improve" in decision["reason"] and decision["reason"].endswith(
        "(hydra.sweeper.stop.patience=3)"
    )
    assert 4 <= decision["finished"] <= len(complete) <= decision["finished"] + 2
    assert all(
        t.state in (TrialState.COMPLETE, TrialState.WAITING) for t in found
    )  # WAITING: asked as the study stopped
    assert Parent.events.count("end FINISHED") == 1


def test_a_trial_asked_just_after_another_worker_stopped_the_study_is_not_run(
    tmp_path: Path, make_worker, monkeypatch
) -> None:
    # The other worker keeps its stop decision between this worker's look at the study and its ask,
    # then finds nothing running and closes the parent: this worker must not run a trial after that.
    worker = make_worker("hydra.sweeper.n_trials=5", task=constant)
    ask = optuna.Study.ask

    def ask_after_the_decision(self: optuna.Study, *args: Any, **kwargs: Any) -> optuna.Trial:
        if stopping.kept(self) is None:
            stopping.keep(self, "another worker's rule", n_trials=5, finished=0)
            assert claim(
                optuna.storages.RDBStorage(storage_url(tmp_path)), self._study_id, f"{CLOSED}.0"
            )  # and closed the parent
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", ask_after_the_decision)
    worker.sweep([])
    assert [t.state for t in study(tmp_path).get_trials()] == [TrialState.WAITING]  # for a resume with a larger budget
    assert Parent.events == ["create"]  # the other worker closed it; the WAITING trial does not make it close twice


def test_stop_settings_need_one_objective(tmp_path: Path, make_worker) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_worker("hydra.sweeper.stop.patience=3", *TWO_OBJECTIVES).sweep([])
    assert (
        str(stopped.value)
        == "hydra-optuna-async-sweeper: error: hydra.sweeper.stop needs one objective: patience and target compare one value, and this study has 2"
    )


def test_enqueued_settings_run_first_and_once_across_a_resume(tmp_path: Path, make_worker) -> None:
    first = "hydra.sweeper.enqueue=[{optimizer.lr:0.002,model.width:2},{optimizer.lr:5e-4}]"  # the second leaves width to the sampler
    make_worker("hydra.sweeper.n_trials=3", first).sweep([])
    found = study(tmp_path).get_trials()
    assert found[0].params == {"optimizer.lr": 0.002, "model.width": 2}
    assert found[1].params["optimizer.lr"] == 5e-4 and found[1].params["model.width"] in (1, 2)
    assert [t.user_attrs.get("enqueued", False) for t in found] == [True, True, False]
    make_worker("hydra.sweeper.n_trials=5", first).sweep([])  # the README's resume, the same command
    found = study(tmp_path).get_trials()
    assert [t.state for t in found] == [TrialState.COMPLETE] * 5
    assert [t.user_attrs.get("enqueued", False) for t in found] == [True, True, False, False, False]
    assert all(t.params["optimizer.lr"] not in (0.002, 5e-4) for t in found[2:])


@pytest.mark.parametrize(
    "given, line",
    [
        (
            "[{model.depth:2}]",
            "hydra.sweeper.enqueue[0]: model.depth is not searched (the space: optimizer.lr, model.width)",
        ),
        (
            "[{optimizer.lr:1e-3},{model.width:3}]",
            "hydra.sweeper.enqueue[1]: model.width=3 is outside its search space IntDistribution(high=2, log=False, low=1, step=1)",
        ),
        ("[{optimizer.lr:1e-3},{optimizer.lr:2e-3}]", "hydra.sweeper.enqueue holds 2 settings, more than n_trials=1"),
    ],
)
def test_enqueued_settings_outside_the_space_stop_with_one_line(
    tmp_path: Path, make_worker, given: str, line: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_worker("hydra.sweeper.n_trials=1", f"hydra.sweeper.enqueue={given}").sweep([])
    assert str(stopped.value) == f"hydra-optuna-async-sweeper: error: {line}"
