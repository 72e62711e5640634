"""hydra-optuna-sweeper's published examples and test configurations, run against this sweeper.

tests/compat/example and tests/compat/tests/conf hold that plugin's example apps and configs with the
same keys and values, except `hydra/sweeper: optuna_async`; the commands below are its tests'
commands (tests/test_optuna_sweeper_plugin.py), run from tests/compat as that plugin runs them from its
root, and the checks are the outcomes its documentation promises. tests/compat/apps holds this suite's
own apps: one that uses the trial API for pruning, one whose sampler breaks.
"""

import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from hydra_plugins.hydra_optuna_async_sweeper.config import MOTPE_REMOVED

PLUGIN = Path(__file__).resolve().parents[1]
SAMPLERS = ["tpe", "random", "grid", "cmaes", "qmc", "gp", "nsgaii", "nsgaiii"]


def run(*cmd: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *cmd], cwd=PLUGIN, capture_output=True, text=True, timeout=timeout)


def results(sweep_dir: Path) -> DictConfig:
    returns = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert isinstance(returns, DictConfig) and returns.name == "optuna"
    return returns


def dominates(x: list[float], y: list[float]) -> bool:
    return all(a <= b for a, b in zip(x, y)) and any(a < b for a, b in zip(x, y))


@pytest.mark.parametrize("with_commandline", (True, False))
def test_optuna_example(with_commandline: bool, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/test.db"
    cmd = [
        "example/sphere.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-optuna-example",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",
    ]
    if with_commandline:
        cmd += ["x=choice(0, 1, 2)", "y=0"]  # y: a fixed parameter, command-line params win over the config's
    done = run(*cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    best = optuna.load_study(storage=storage, study_name="test-optuna-example").best_trial
    assert returns.best_params.x == best.params["x"] and returns.best_value == best.value
    if with_commandline:
        assert "y" not in returns.best_params and "y" not in best.params and returns.best_params.x in (0, 1, 2)
    else:
        assert returns.best_params.y == best.params["y"]
    assert returns.best_value <= 2.27  # that plugin's bound for TPE on this problem


def test_the_grid_reads_range_as_hydra_optuna_sweeper_does_and_stops_at_its_last_point(tmp_path: Path) -> None:
    # tests/conf/test_grid.yaml: choice(-1, 1) x range(-1.0, 1.0, step=1) x choice("foo", "bar"). That
    # plugin's grid leaves a range's stop out (-1.0, 0.0): 8 points, each once, though n_trials asks for 20.
    storage = f"sqlite:///{tmp_path}/test.db"
    done = run(
        "example/sphere.py",
        "--multirun",
        "--config-dir=tests/conf",
        "--config-name=test_grid",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweeper.n_trials=20",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-grid-sampler",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(storage=storage, study_name="test-grid-sampler").get_trials()
    assert sorted(tuple(sorted(t.params.items())) for t in trials) == sorted(
        (("x", x), ("y", y), ("z", z)) for x in (-1, 1) for y in (-1.0, 0.0) for z in ("foo", "bar")
    )
    assert results(tmp_path).best_value == 1


def test_the_sphere_example_as_published(tmp_path: Path) -> None:
    # example/conf/config.yaml unchanged: TPE (seed 123) over range(-5.5, 5.5, step=0.5) x choice(-5, 0, 5), in memory.
    done = run("example/sphere.py", "--multirun", f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "study sphere: 20 COMPLETE" in done.stdout and results(tmp_path).best_value <= 2.27
    )  # that plugin's bound for TPE here


@pytest.mark.parametrize("with_commandline", (True, False))
def test_optuna_multi_objective_example(with_commandline: bool, tmp_path: Path) -> None:
    cmd = [
        "example/multi-objective.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
    ]
    if with_commandline:
        cmd += ["x=range(0, 5)", "y=range(0, 3)"]
    done = run(*cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    solutions = results(tmp_path).solutions
    assert solutions
    for x in solutions:
        assert x.params.x % 1 in ({0} if with_commandline else {0, 0.5}) and x.params.y % 1 in (
            {0} if with_commandline else {0, 0.5}
        )
        assert not any(dominates(list(y["values"]), list(x["values"])) for y in solutions)  # a Pareto front


def test_optuna_custom_search_space_example(tmp_path: Path) -> None:
    done = run(
        "example/custom-search-space-objective.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "max_z_difference_from_x=0.3",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    assert abs(returns.best_params.x - returns.best_params.z) <= 0.3
    assert 0 <= returns.best_params["+w"] <= 1


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_shipped_sampler(sampler: str, tmp_path: Path) -> None:
    done = run(
        "example/sphere.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra/sweeper/sampler={sampler}",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.sampler.seed=1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "study sphere: 6 COMPLETE" in done.stdout
    assert results(tmp_path).best_params.y in (-5, 0, 5)


def test_tpe_keys_of_that_plugin_compose(tmp_path: Path) -> None:
    keys = [
        "consider_endpoints=true",
        "consider_prior=true",
        "prior_weight=1.0",
        "warn_independent_sampling=false",
        "multivariate=false",
    ]
    done = run(
        "example/sphere.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.n_trials=2",
        *(f"hydra.sweeper.sampler.{key}" for key in keys),
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_multi_objective_example_as_published_with_nsgaii_and_tpe(tmp_path: Path) -> None:
    for sampler in ("nsgaii", "tpe"):
        done = run(
            "example/multi-objective.py",
            "--multirun",
            f"hydra.sweep.dir={tmp_path / sampler}",
            f"hydra/sweeper/sampler={sampler}",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert results(tmp_path / sampler).solutions


@pytest.mark.parametrize(
    "script, overrides, line",
    [
        (
            "multi-objective",
            ["--config-dir=tests/conf", "--config-name=test_motpe"],
            f"hydra-optuna-async-sweeper: error: hydra/sweeper/sampler=motpe: {MOTPE_REMOVED}",
        ),
        (
            "multi-objective",
            ["hydra/sweeper/pruner=median"],
            "hydra-optuna-async-sweeper: error: hydra/sweeper/pruner: Optuna cannot prune a study of 2 objectives; use hydra/sweeper/pruner=none",
        ),
    ],
)
def test_what_this_sweeper_refuses_is_one_line(tmp_path: Path, script: str, overrides: list[str], line: str) -> None:
    flags = [o for o in overrides if o.startswith("--")]
    done = run(
        f"example/{script}.py",
        "--multirun",
        *flags,
        f"hydra.sweep.dir={tmp_path}",
        *[o for o in overrides if o not in flags],
    )
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == line and "Traceback" not in done.stderr


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_an_app_reaches_its_trial_and_is_pruned(tmp_path: Path, launcher: str) -> None:
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install -e '.[distributed]'")
    storage = f"sqlite:///{tmp_path}/prune.db"
    done = run(
        "tests/apps/pruned.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=prune",
        f"hydra/launcher={launcher}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="prune", storage=storage).get_trials()
    assert len(trials) == 8 and all(t.intermediate_values for t in trials)  # every job reported through trial.current()
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.PRUNED}


def test_n_jobs_workers_do_not_rerun_the_command_line(tmp_path: Path) -> None:
    # Started through runpy from `python -c`: re-running this process's command line would not sweep.
    storage = f"sqlite:///{tmp_path}/workers.db"
    argv = [
        "tests/apps/pruned.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=w",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.pruner.n_startup_trials=100",
        "step_s=0.3",
    ]
    code = f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path('tests/apps/pruned.py', run_name='__main__')"
    done = run("-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="w", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    ran = [int(n) for n in re.findall(r"this worker ran (\d+) trials", done.stdout + done.stderr)]
    assert len(ran) == 2 and sum(ran) == 8 and min(ran) > 0, ran
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == sorted(
        str(n) for n in range(8)
    )  # one sweep dir
    assert not (tmp_path / ".workers.pkl").exists()  # the pickled config, storage URL included, is removed


def test_a_sampler_error_fails_its_trial_with_the_reason(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/broken.db"
    done = run(
        "tests/apps/pruned.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=b",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler._target_=failing_sampler.FailingSampler",
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("the sampler failed: ImportError: the sampler's package is missing")
        or "sampling failed: ImportError: the sampler's package is missing" in done.stderr.strip().splitlines()[-1]
    )
    with sqlite3.connect(tmp_path / "broken.db") as db:
        assert db.execute("SELECT state FROM trials").fetchall() == [("FAIL",)]  # not left RUNNING


def test_n_jobs_workers_each_get_their_own_cuda_device(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the app counts devices as torch does")
    # Two CUDA devices as torch would count them, three workers: devices 0, 1, 0 (round-robin).
    storage = f"sqlite:///{tmp_path}/devices.db"
    argv = [
        "tests/apps/devices.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=d",
        "hydra.sweeper.n_jobs=3",
        "hydra.sweeper.n_trials=9",
        "step_s=1.0",
    ]
    code = f"import runpy, sys, torch; torch.cuda.device_count = lambda: 2; sys.argv = {argv!r}; runpy.run_path('tests/apps/devices.py', run_name='__main__')"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}
    first = subprocess.Popen(
        [sys.executable, "-c", code], cwd=PLUGIN, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, output[-3000:]
    handed = {
        (t.user_attrs["pid"], t.user_attrs["cuda_visible_devices"])
        for t in optuna.load_study(study_name="d", storage=storage).get_trials()
    }
    workers = {pid for pid, _ in handed}
    assert len(handed) == len(workers) == 3, handed  # each worker ran trials, always on the one device it was handed
    assert (first.pid, "0") in handed and sorted(device for pid, device in handed if pid != first.pid) == ["0", "1"]
    assert "started 2 more worker processes, each on one of 2 CUDA devices" in output
    threads = {t.user_attrs["threads"] for t in optuna.load_study(study_name="d", storage=storage).get_trials()}
    assert threads == {max(1, len(os.sched_getaffinity(0)) // 3)}  # the cores shared out, not one thread per core each


@pytest.mark.parametrize(
    "visible, handed", [(None, ["0", "1", "2", "0"]), ("4,6", ["4", "6", "4", "6"]), ("", [None] * 4)]
)
def test_workers_are_handed_devices_round_robin(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, handed: list[str | None]
) -> None:
    torch = pytest.importorskip("torch", reason="devices are counted as torch counts them")

    from hydra_plugins.hydra_optuna_async_sweeper import _spawn as spawn

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)  # a scheduler's share of the machine
    devices = spawn.cuda_devices()
    assert [spawn.device_for(worker, devices) for worker in range(4)] == handed
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert (
        spawn.device_for(1, spawn.cuda_devices()) is None
    )  # one device: nothing to share out, the environment is left alone


def overlapping(spans: list[tuple[float, float]]) -> int:
    """The most jobs that ran at one moment, from (start, end) pairs."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize("storage", ["sqlite", "memory"])
def test_a_launcher_that_runs_jobs_elsewhere_runs_n_jobs_trials_at_once(tmp_path: Path, storage: str) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install hydra-joblib-launcher")
    url = f"sqlite:///{tmp_path}/at_once.db"
    # An in-memory study cannot hear from joblib's processes: no pruner then (the test below).
    given = (
        [f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=at_once", "hydra.sweeper.pruner.n_startup_trials=6"]
        if storage == "sqlite"
        else ["report=false"]
    )
    done = run(
        "tests/apps/pruned.py",
        "--multirun",
        f"--config-name={'config' if storage == 'sqlite' else 'unpruned'}",
        f"hydra.sweep.dir={tmp_path}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=6",
        "step_s=0.5",
        f"record={tmp_path}/spans.txt",
        *given,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spans = [tuple(map(float, line.split())) for line in (tmp_path / "spans.txt").read_text().splitlines()]
    assert len(spans) == 6 and overlapping(spans) == 2  # two at a time, in joblib's processes
    if storage == "sqlite":
        trials = optuna.load_study(study_name="at_once", storage=url).get_trials()
        assert all(len(t.intermediate_values) == 5 for t in trials)  # each job reported every step to its trial


def test_a_pruner_with_an_in_memory_study_and_jobs_elsewhere_is_refused_at_the_start(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install hydra-joblib-launcher")
    done = run("tests/apps/pruned.py", "--multirun", f"hydra.sweep.dir={tmp_path}", "hydra/launcher=joblib")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "hydra-optuna-async-sweeper: error: hydra/sweeper/pruner needs each job to report to its trial, and JoblibLauncher runs jobs in other processes"
        )
    )
    assert not list(tmp_path.glob("[0-9]*"))  # refused before any job


def test_a_samplers_constraints_func_is_honoured(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/constrained.db"
    constraints = "hydra.sweeper.sampler.constraints_func={_target_:constrained.constraints,_partial_:true}"  # Hydra's way to name a function
    done = run(
        "tests/apps/constrained.py",
        "--multirun",
        "--config-name=unpruned",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=c",
        "hydra.sweeper.n_trials=12",
        constraints,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="c", storage=storage).get_trials()
    assert all(
        t.system_attrs["constraints"] == [1 - t.params["x"]] for t in trials
    )  # recorded by the sampler's after_trial
    study = optuna.load_study(study_name="c", storage=storage)
    assert all(t.params["x"] >= 1 for t in study.best_trials)  # only a feasible trial can be the best


@pytest.mark.parametrize("start", [["-W", "default"], ["-m", "cProfile", "-o", "{tmp}/profile.out"]])
def test_the_reproduce_command_is_the_command_as_python_was_started(tmp_path: Path, start: list[str]) -> None:
    start = [word.format(tmp=tmp_path) for word in start]
    done = run(
        *start, "example/sphere.py", "--multirun", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=2", "z=3"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    command = shlex.split(results(tmp_path).command)
    best = results(tmp_path).best_params
    assert command == [sys.executable, *start, "example/sphere.py", "z=3", f"x={best.x}", f"y={best.y}"]


def test_the_mlflow_parent_run_is_set_on_the_command_line(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="pip install 'hydra-optuna-async-sweeper[mlflow]'")
    store = f"sqlite:///{tmp_path}/mlflow.db"
    done = run(
        "example/sphere.py",
        "--multirun",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.mlflow.tracking_uri={store}",
        "hydra.sweeper.mlflow.experiment=sphere",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [parent] = mlflow.MlflowClient(store).search_runs(
        [mlflow.MlflowClient(store).get_experiment_by_name("sphere").experiment_id]
    )
    assert (
        parent.info.run_name == "sweep-sphere"
        and parent.info.status == "FINISHED"
        and parent.data.metrics["trials_complete"] == 2
    )


def test_a_waiting_trial_two_workers_take_at_once_is_run_by_one(tmp_path: Path) -> None:
    # On SQLite, Optuna's ask reads a WAITING trial's state and then writes RUNNING without a row lock,
    # so two workers asking at once can both be handed the same enqueued trial: one claim decides.
    from hydra_plugins.hydra_optuna_async_sweeper._study import claim_asked, settle

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/race.db")
    study = optuna.create_study(study_name="race", storage=storage)
    study.enqueue_trial({"x": 1.0})
    handed = study.ask()
    both = optuna.load_study(study_name="race", storage=storage)  # another worker, handed the same trial
    same = optuna.trial.Trial(both, handed._trial_id)
    assert [claim_asked(study, handed), claim_asked(both, same)] == [True, False]
    settle(storage, handed._trial_id, TrialState.WAITING)  # put back: asked anew later, claimed anew
    again = study.ask()
    assert again._trial_id == handed._trial_id and claim_asked(study, again)
    fresh = study.ask()  # a new trial, never WAITING: no claim needed, none made
    assert claim_asked(study, fresh)
