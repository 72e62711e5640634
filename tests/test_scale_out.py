"""One sweep, several workers, real servers: a throwaway PostgreSQL cluster holds the Optuna study and
backs an MLflow tracking server on loopback. Needs PostgreSQL's binaries and `.[distributed]`."""

import os
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

from tests.test_sweep import sweep_cmd

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
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    options = f"-p {pg_port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "pg.log"), "-w", "start"], check=True, capture_output=True)
    server = None
    try:
        db = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg_port}"
        with psycopg.connect(f"{db}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE optuna")
            connection.execute("CREATE DATABASE mlflow")
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"{db}/mlflow", "--artifacts-destination", str(root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(mlflow_port)]
        tracking = f"http://127.0.0.1:{mlflow_port}"

        def start_server() -> subprocess.Popen:
            process = subprocess.Popen(command, stdout=open(root / "mlflow.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
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
        yield {"storage": f"{db}/optuna", "tracking": tracking, "restart": restart_server}
    finally:
        if server is not None:
            stop_server()
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.scale_out
def test_three_workers_share_one_study_and_a_killed_worker_is_replaced(servers: dict[str, Any], tmp_path: Path) -> None:
    command = sweep_cmd(
        tmp_path, "sweep=smoke", "trainer.epochs=2", "hydra.sweeper.n_trials=9", "hydra.sweeper.heartbeat_interval=5",
        f"hydra.sweeper.storage={servers['storage']}", f"tracking.uri={servers['tracking']}",
    )
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen(command, stdout=open(logs[i], "w"), stderr=subprocess.STDOUT, cwd=tmp_path)

    started = time.monotonic()
    workers = [start(i) for i in range(3)]
    while "MLflow run" not in logs[2].read_text():  # worker 2 is inside a trial
        assert workers[2].poll() is None and time.monotonic() - started < 240, logs[2].read_text()[-2000:]
        time.sleep(0.5)
    time.sleep(1)
    workers[2].kill()  # SIGKILL: no clean-up of any kind
    killed_at = datetime.now()
    workers[2].wait()
    servers["restart"]()  # the tracking server away for its restart (about 20 s); MLflow's client retries
    workers.append(start(3))  # the killed worker started again
    for i in (0, 1, 3):
        assert workers[i].wait(timeout=300) == 0, logs[i].read_text()[-3000:]
    wall = time.monotonic() - started

    trials = optuna.load_study(study_name="smoke", storage=servers["storage"]).get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # no gap, no duplicate
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 9  # the budget is global
    [killed] = [t for t in trials if t.state == TrialState.FAIL]
    seconds_to_fail = (killed.datetime_complete - killed_at).total_seconds()
    assert seconds_to_fail < 20  # a silent trial fails after 2 x 5 s, at the next heartbeat of a live worker

    mlflow.set_tracking_uri(servers["tracking"])
    runs = mlflow.search_runs(experiment_names=["colorize"], output_format="list")
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {int(r.data.tags["optuna.trial"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    assert sorted(children) == [t.number for t in trials]
    assert children[killed.number].info.status == "KILLED" and children[killed.number].data.tags["optuna.state"] == "FAIL"
    client = mlflow.MlflowClient()
    for trial in trials:
        if trial.state == TrialState.COMPLETE:  # no finished trial lost a metric to the outage
            assert children[trial.number].info.status == "FINISHED"
            assert [m.step for m in client.get_metric_history(children[trial.number].info.run_id, "val_psnr")] == [1, 2]

    ran = [int(line.split("this worker ran ")[1].split()[0]) for i in (0, 1, 3) for line in logs[i].read_text().splitlines() if "this worker ran" in line]
    assert sum(ran) == 9
    everything = "".join(log.read_text() for log in logs) + "".join(str(r.data.params) + str(r.data.tags) for r in runs)
    assert PASSWORD not in everything
    print(f"\ntrials per worker {ran} + 1 killed; wall {wall:.0f} s; killed trial FAIL {seconds_to_fail:.1f} s after SIGKILL")
