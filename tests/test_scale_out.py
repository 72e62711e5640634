"""One sweep, several workers, real servers: a throwaway PostgreSQL cluster holds the Optuna study and
backs an MLflow tracking server on loopback. Needs PostgreSQL's binaries and `.[distributed]`."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import mlflow
import optuna
import pytest
import requests
from optuna.trial import TrialState

from tests.conftest import run_cli
from tests.test_sweep import sweep, sweep_cmd

PASSWORD = "s3cret-pw"  # the cluster trusts loopback; the password is there to be masked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's versioned folder, which is not on PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    pytest.importorskip("psycopg", reason="PostgreSQL driver absent: pip install -e '.[distributed]'")
    import psycopg

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) absent: .ci/run installs them")
    # PostgreSQL refuses to run as root: run it as the postgres user in a folder it owns.
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="colorize-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres")
    data, pg_port, mlflow_port = root / "data", free_port(), free_port()
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {pg_port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_postgres,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "pg.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    server = None
    try:
        db = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg_port}"
        with psycopg.connect(f"{db}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE optuna")
            connection.execute("CREATE DATABASE mlflow")
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"{db}/mlflow",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
        ]
        tracking = f"http://127.0.0.1:{mlflow_port}"

        def start_server() -> subprocess.Popen:
            process = subprocess.Popen(
                command, stdout=open(root / "mlflow.log", "a"), stderr=subprocess.STDOUT, start_new_session=True
            )
            for _ in range(120):
                try:
                    requests.get(f"{tracking}/health", timeout=2).raise_for_status()
                    return process
                except requests.RequestException:
                    time.sleep(1)
            pytest.fail(f"the MLflow server did not start: {(root / 'mlflow.log').read_text()[-2000:]}")

        def stop_server() -> None:
            os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and its workers
            server.wait(timeout=30)

        def restart_server() -> None:
            nonlocal server
            stop_server()
            server = start_server()

        server = start_server()
        yield {
            "storage": f"{db}/optuna",
            "tracking": tracking,
            "restart": restart_server,
            "artifacts": root / "artifacts",
        }
    finally:
        if server is not None:
            stop_server()
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.scale_out
def test_workers_started_together_and_killed_at_random_finish_the_budget_once(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    """Chaos: 4 workers started at one instant on a 16-trial budget; two SIGKILLed at seeded random
    moments and started again."""
    budget, rng = 16, random.Random(0)
    command = sweep_cmd(
        tmp_path,
        "sweep=smoke",
        "trainer.epochs=1",
        "data.limit=100",
        f"hydra.sweeper.n_trials={budget}",
        "hydra.sweeper.heartbeat_interval=2",
        "hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}",
        f"tracking.uri={servers['tracking']}",
    )
    env = {**os.environ, "OPTUNA_STORAGE": servers["storage"]}
    logs: list[Path] = []

    def start(name: str) -> subprocess.Popen:
        logs.append(tmp_path / f"{name}.log")
        return subprocess.Popen(command, stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT, cwd=tmp_path, env=env)

    started = time.monotonic()
    workers = [start(f"worker{i}") for i in range(4)]
    kills = []
    for victim in rng.sample(range(4), 2):
        time.sleep(rng.uniform(15, 40))  # seconds into the sweep: asking, or mid-trial
        workers[victim].kill()  # SIGKILL: no clean-up of any kind
        workers[victim].wait()
        kills.append((victim, datetime.now()))
        workers.append(start(f"restarted{victim}"))
    for i, worker in enumerate(workers):
        if i not in [v for v, _ in kills]:
            assert worker.wait(timeout=240) == 0, logs[i].read_text()[-3000:]
    wall = time.monotonic() - started

    trials = optuna.load_study(study_name="smoke", storage=servers["storage"]).get_trials()
    # The invariant: trial numbers 0..N-1; exactly `budget` COMPLETE; the rest FAIL (a killed worker's)
    # or WAITING (asked past the budget, for a later resume); none RUNNING.
    assert [t.number for t in trials] == list(range(len(trials)))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == budget
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in complete}) == budget  # no two alike
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs.get("worker_stopped") for t in failed)  # only killed workers' trials failed
    noticed = [
        (t.datetime_complete - max(at for _, at in kills if at <= t.datetime_complete)).total_seconds() for t in failed
    ]

    mlflow.set_tracking_uri(servers["tracking"])
    runs = mlflow.search_runs(experiment_names=["colorize"], output_format="list")
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == budget
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in children)
    everything = "".join(log.read_text() for log in logs) + "".join(str(r.data.params) + str(r.data.tags) for r in runs)
    assert PASSWORD not in everything

    ran = [
        int(line.split("this worker ran ")[1].split()[0])
        for log in logs
        for line in log.read_text().splitlines()
        if "this worker ran" in line
    ]
    print(
        f"\ntrials per finishing worker {ran}; killed workers {[v for v, _ in kills]}; {len(failed)} trials FAIL, noticed "
        f"{', '.join(f'{s:.1f}' for s in noticed)} s after the SIGKILL; {len(trials)} trials; wall {wall:.0f} s"
    )


@pytest.mark.scale_out
def test_a_password_in_a_url_is_printed_and_written_nowhere(servers: dict[str, Any], tmp_path: Path) -> None:
    """The tracking server's and the storage's passwords typed on the command line of a run and of a
    two-trial sweep: not one byte of what they print or write holds either (Hydra's .hydra/ files,
    multirun.yaml, optimization_results.yaml, logs, checkpoints, artifacts), nor any param or tag."""
    tracking = servers["tracking"].replace("http://", f"http://colorize:{PASSWORD}@")
    tiny = [
        "trainer.epochs=1",
        "data.limit=100",
        "trainer.progress=false",
        "tracking.grid_images=2",
        f"tracking.uri={tracking}",
    ]
    ran = run_cli("train", tmp_path, *tiny)
    swept = sweep(
        tmp_path,
        "sweep=smoke",
        *tiny,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=passwords",
        f"hydra.sweeper.storage={servers['storage']}",
    )
    for result in (ran, swept):
        assert result.returncode == 0, result.stderr[-3000:]
        assert PASSWORD not in result.stdout + result.stderr
    assert "View run" in ran.stdout + ran.stderr  # MLflow's own line, printed with the address it was given
    files = [path for folder in (tmp_path, servers["artifacts"]) for path in folder.rglob("*") if path.is_file()]
    assert any(path.name == "optimization_results.yaml" for path in files) and any(
        path.name == "best.pt" for path in files
    )
    holding = [str(path) for path in files if PASSWORD.encode() in path.read_bytes()]
    assert holding == [], holding
    mlflow.set_tracking_uri(servers["tracking"])
    recorded = mlflow.search_runs(experiment_names=["colorize"], output_format="list")
    assert PASSWORD not in "".join(str(r.data.params) + str(r.data.tags) for r in recorded)
