import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from colorize.config import register
from hydra_plugins.hydra_optuna_async_sweeper._space import distribution
from tests.conftest import PROJECT, run_cli, runs

TINY = ["data.limit=200", "tracking.grid_images=2"]  # 160 train / 40 val patches: seconds per trial


def sweep_cmd(root: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "colorize.train", "-m", f"paths.root_dir={root}", *TINY, *overrides]


def sweep(root: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_cmd(root, *overrides), capture_output=True, text=True, timeout=timeout, cwd=root)


def trials(root: Path, study: str = "smoke") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{root}/sweeps/optuna.db").get_trials()


def parent_and_children(root: Path) -> tuple[list, list]:
    all_runs = runs(root)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.mark.parametrize(
    "override, expected",
    [
        ("a=interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
        ("a=int(interval(1, 4))", IntDistribution(1, 4)),
        ("a=tag(log, interval(1e-4, 3e-2))", FloatDistribution(1e-4, 3e-2, log=True)),
        ("a=tag(log, int(interval(8, 64)))", IntDistribution(8, 64, log=True)),
        ("a=range(1, 5)", IntDistribution(1, 5)),  # hydra-optuna-sweeper's range includes its stop
        ("a=range(1, 9, 2)", IntDistribution(1, 9, step=2)),
        ("a=range(-5.5, 5.5, step=0.5)", FloatDistribution(-5.5, 5.5, step=0.5)),
        ("a=choice(adam, sgd)", CategoricalDistribution(["adam", "sgd"])),
        ("a=3", None),
    ],
)
def test_search_space_keeps_hydra_optuna_sweeper_syntax(override: str, expected) -> None:
    [parsed] = OverridesParser.create().parse_overrides([override])
    assert distribution(parsed) == expected


def test_sweep_configs_compose() -> None:
    register()
    try:
        with initialize_config_dir(str(PROJECT / "conf"), version_base="1.3"):
            cfg = compose("train", ["sweep=lr_width", "paths.root_dir=/r"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_async_sweeper.optuna_sweeper.OptunaSweeper"
    assert (
        sweeper.direction == cfg.objective.direction == "maximize" and sweeper.sampler.seed == 0
    )  # follows the objective
    assert sweeper.sampler.multivariate is None and sweeper.sampler.constant_liar is True  # Optuna 5's TPE defaults
    assert sweeper.check == "colorize.config.check"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper.params["optimizer.lr"] == "tag(log, interval(1e-4, 3e-2))"
    assert sweeper.storage == "sqlite:////r/sweeps/optuna.db" and sweeper.study_name == "lr_width"
    assert sweeper.mlflow == {"tracking_uri": "sqlite:////r/mlruns/mlflow.db", "experiment": "colorize"}
    assert sweeper.trial_id is None and "trial" not in cfg  # only the sweeper sets it, on each job


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (PROJECT / "conf" / "sweep").glob("*.yaml")))
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_every_sweep_config_follows_the_declared_objective(sweep: str, direction: str) -> None:
    # The plugin's default is minimize (hydra-optuna-sweeper's): a sweep config that forgot to pass
    # objective.direction through would minimise PSNR.
    register()
    try:
        with initialize_config_dir(str(PROJECT / "conf"), version_base="1.3"):
            cfg = compose("train", [f"sweep={sweep}", f"objective.direction={direction}"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.metric_names == cfg.objective.metric  # the report and plots name the objective


def test_smoke_sweep_end_to_end(tmp_path: Path) -> None:
    result = sweep(tmp_path, "sweep=smoke", "hydra.sweeper.register=colorize")
    assert result.returncode == 0, result.stderr[-3000:]
    found = trials(tmp_path)
    assert [t.number for t in found] == [0, 1, 2]
    assert [t.state for t in found] == [TrialState.COMPLETE] * 3
    best = max(found, key=lambda t: t.value)

    [parent], children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-smoke"
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert parent.data.tags["best.trial"] == str(best.number)
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/optimization_history.png", "plots/param_importances.png", "plots/parallel_coordinate.png"}
    assert sorted(c.data.tags["optuna.trial"] for c in children) == ["0", "1", "2"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["optuna.state"] == "COMPLETE"
    assert {t.user_attrs["mlflow_run_id"] for t in found} == {c.info.run_id for c in children}
    assert sorted(c.info.run_name for c in children) == ["smoke-trial-0", "smoke-trial-1", "smoke-trial-2"]
    # hydra.sweeper.register: the best trial's model is the registered model's version, alias champion.
    champion = mlflow.MlflowClient().get_model_version_by_alias("colorize", "champion")
    assert (
        champion.run_id == best.user_attrs["mlflow_run_id"]
        and parent.data.tags["best.model"] == f"models:/colorize/{champion.version}"
    )

    # The printed command reproduces the best trial as a plain run.
    command = re.search(r"reproduce the best \(trial \d+\):\n  (.+)\n", result.stdout).group(1)
    argv = shlex.split(command)
    assert argv[:3] == [sys.executable, "-m", "colorize.train"] and "-m" not in argv[3:]  # the command as it was typed
    rerun = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    [single] = [
        r for r in runs(tmp_path) if r.info.run_id not in {parent.info.run_id, *(c.info.run_id for c in children)}
    ]
    assert single.data.metrics["val_psnr"] == pytest.approx(best.value, abs=1e-4)


@pytest.mark.slow  # kept out of the default run and CI (20-minute budget): run with -m slow
def test_a_two_objective_sweep_reports_its_pareto_front(tmp_path: Path) -> None:
    objectives = ["objective.metric=[val_psnr,val_colorfulness_ratio]", "objective.direction=[maximize,maximize]"]
    result = sweep(tmp_path, "sweep=smoke", *objectives, "trainer.epochs=1", "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path}/sweeps/optuna.db")
    assert study.metric_names == ["val_psnr", "val_colorfulness_ratio"] and len(study.directions) == 2
    front = sorted(t.number for t in study.best_trials)
    assert front and all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)

    # The printed table: the front, each member with its two values and its own reproduce command.
    assert (
        f"Pareto front: {len(front)} of 4 complete trials (maximize val_psnr, maximize val_colorfulness_ratio):"
        in result.stdout
    )
    for t in study.trials:
        row = re.search(rf"^ +{t.number} +{t.values[0]:.4f} +{t.values[1]:.4f} ", result.stdout, re.MULTILINE)
        command = re.search(
            rf"^  trial {t.number}: \S+ -m colorize.train .*optimizer.lr={t.params['optimizer.lr']}",
            result.stdout,
            re.MULTILINE,
        )
        assert (row is not None, command is not None) == ((True, True) if t.number in front else (False, False)), (
            t.number
        )

    [parent], children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.tags["pareto.trials"] == ",".join(map(str, front))
    assert parent.data.metrics["pareto_trials"] == len(front)
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/pareto_front.png"}
    tagged = {int(c.data.tags["optuna.trial"]): c.data.tags["optuna.pareto_front"] for c in children}
    assert tagged == {n: str(n in front).lower() for n in range(4)}


@pytest.mark.slow
def test_resume_continues_the_study_and_fails_a_dead_workers_trial(tmp_path: Path) -> None:
    first = sweep(tmp_path, "sweep=smoke", "hydra.sweeper.n_trials=2", "trainer.epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    # A worker killed mid-trial: its trial is RUNNING, its last heartbeat 3 s old.
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path}/sweeps/optuna.db")
    orphan = study.ask()
    study._storage.record_heartbeat(orphan._trial_id)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    [parent], _ = parent_and_children(tmp_path)
    child_tags = {"mlflow.parentRunId": parent.info.run_id, "optuna.trial": "2"}
    orphan_run = (
        mlflow.MlflowClient().create_run(parent.info.experiment_id, tags=child_tags).info.run_id
    )  # left RUNNING
    orphan.set_user_attr("mlflow_run_id", orphan_run)
    time.sleep(3)
    second = sweep(
        tmp_path, "sweep=smoke", "hydra.sweeper.n_trials=4", "trainer.epochs=1", "hydra.sweeper.heartbeat_interval=1"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    found = trials(tmp_path)
    assert [t.number for t in found] == [0, 1, 2, 3, 4]
    assert [t.state for t in found] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    lost = mlflow.MlflowClient().get_run(orphan_run)
    assert lost.info.status == "KILLED" and lost.data.tags["optuna.state"] == "FAIL"
    [parent], children = parent_and_children(tmp_path)  # the resumed sweep reuses its parent run
    children = [c for c in children if c.info.run_id != orphan_run]
    assert sorted(c.data.tags["optuna.trial"] for c in children) == ["0", "1", "3", "4"]
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 4


@pytest.mark.slow
def test_a_hopeless_learning_rate_is_pruned_before_its_last_epoch(tmp_path: Path) -> None:
    median = [
        "sweep=smoke",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "trainer.epochs=3",
        "trainer.batch_size=20",
    ]
    good = sweep(tmp_path, *median, "hydra.sweeper.n_trials=1", "optimizer.lr=interval(1e-3, 1e-3)")
    assert good.returncode == 0, good.stderr[-3000:]
    # Adam at lr 1 drives the sigmoid outputs to 0 or 1 at once: far below any trained trial's PSNR.
    hopeless = sweep(tmp_path, *median, "hydra.sweeper.n_trials=2", "optimizer.lr=interval(1.0, 1.0)")
    assert hopeless.returncode == 0, hopeless.stderr[-3000:]
    first, second = trials(tmp_path)
    assert first.state == TrialState.COMPLETE and second.state == TrialState.PRUNED
    assert second.user_attrs["reason"].startswith("pruned: after epoch")
    assert max(second.intermediate_values) < 3 and second.params["optimizer.lr"] == 1.0
    [child] = [c for c in parent_and_children(tmp_path)[1] if c.data.tags["optuna.trial"] == "1"]
    assert child.data.tags["optuna.state"] == "PRUNED"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(child.info.run_id, "val_psnr")]
    assert steps == sorted(second.intermediate_values)


@pytest.mark.slow
def test_a_diverging_trial_is_pruned_with_its_reason_and_the_sweep_completes(tmp_path: Path) -> None:
    grid = [
        "hydra/sweeper/sampler=grid",
        "optimizer.lr=choice(1e-3, 1e20)",
        "model.width=1",
    ]  # two trials, one of each lr
    result = sweep(tmp_path, "sweep=smoke", *grid, "trainer.epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    by_lr = {t.params["optimizer.lr"]: t for t in trials(tmp_path)}
    assert set(by_lr) == {1e-3, 1e20}
    assert by_lr[1e-3].state == TrialState.COMPLETE
    assert by_lr[1e20].state == TrialState.PRUNED
    assert "training diverged: train loss is nan at epoch 1" in by_lr[1e20].user_attrs["reason"]
    [diverged] = [c for c in parent_and_children(tmp_path)[1] if c.data.tags["optuna.state"] == "PRUNED"]
    assert diverged.info.status == "FAILED" and "diverged" in diverged.data.tags["optuna.reason"]


def test_a_value_every_trial_would_reject_stops_the_sweep_before_any_trial(tmp_path: Path) -> None:
    result = sweep(
        tmp_path,
        "sweep=smoke",
        "hydra.sweeper.max_failure_rate=0.5",
        "hydra.sweeper.n_trials=2",
        "model.width=choice(0)",
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "hydra-optuna-async-sweeper: error: the sweep cannot start: model.width=0 must be >= 1 "
        "(hydra.sweeper.check=colorize.config.check at optimizer.lr=0.0001 model.width=0)"
    )
    assert not (tmp_path / "sweeps" / "optuna.db").exists() and not (tmp_path / "mlruns").exists()  # nothing started


@pytest.mark.slow
def test_concurrent_sweeps_and_n_jobs_share_one_study(tmp_path: Path) -> None:
    # Three workers on one storage: a command with n_jobs=2 and a second command.
    common = ["sweep=smoke", "hydra.sweeper.n_trials=6", "trainer.epochs=1"]
    processes = [
        subprocess.Popen(
            sweep_cmd(tmp_path, *common, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
        )
        for extra in (["hydra.sweeper.n_jobs=2"], [])
    ]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    found = trials(tmp_path)
    assert [t.number for t in found] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in found)
    ran = [int(n) for output in outputs for n in re.findall(r"this worker ran (\d+) trials", output)]
    assert len(ran) == 3 and sum(ran) == 6
    assert all(re.search(r"this worker ran [1-9]\d* trials", output) for output in outputs)  # both commands contributed
    [parent], children = parent_and_children(tmp_path)
    assert sorted(int(c.data.tags["optuna.trial"]) for c in children) == list(range(6))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}


@pytest.mark.parametrize(
    "override, named",
    [
        (
            "tracking.uri=http://user:secret@127.0.0.1:9",
            "hydra-optuna-async-sweeper: error: hydra.sweeper.mlflow.tracking_uri=http://user:***@127.0.0.1:9: no MLflow server answers",
        ),
        (
            "hydra.sweeper.storage=postgresql://user:secret@127.0.0.1:9/optuna",
            "hydra-optuna-async-sweeper: error: Optuna storage postgresql://user:***@127.0.0.1:9/optuna: ",
        ),
    ],
)
def test_an_unreachable_server_is_one_line_without_the_password(tmp_path: Path, override: str, named: str) -> None:
    result = sweep(tmp_path, "sweep=smoke", override, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(named)
    assert "Traceback" not in result.stderr and "secret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "launcher, target",
    [
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_shipped_launcher_configs_compose(tmp_path: Path, launcher: str, target: str) -> None:
    pytest.importorskip(
        f"hydra_plugins.hydra_{'joblib' if launcher == 'joblib' else 'submitit'}_launcher",
        reason="pip install -e '.[distributed]'",
    )
    result = run_cli("train", tmp_path, "sweep=smoke", f"launcher={launcher}", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr
    assert f"_target_: {target}" in result.stdout
