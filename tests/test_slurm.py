"""The README's SLURM story, run for real on a throwaway one-node cluster (tests/slurm_cluster.py):
sweep workers as an array job, one run over two tasks of Hydra's submitit launcher, a sweep whose
every trial is a SLURM job, and a cancelled trial job. Needs Slurm's, munge's and MariaDB's binaries and `.[distributed]`.

Storage: the default SQLite study and local MLflow store under tmp_path. One node shares one disk,
so no servers are needed (the PostgreSQL + MLflow server path is tests/test_scale_out.py's), and
starting none keeps the module fast."""

import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import mlflow
import pytest
from optuna.trial import TrialState

from tests.conftest import run_cli, runs
from tests.slurm_cluster import Cluster, missing, slurm_cluster
from tests.test_sweep import parent_and_children, sweep_cmd, trials

# Tiny trials; the data, epochs and study size are the tests' own.
SMALL = ["data.limit=100", "tracking.grid_images=0", "trainer.progress=false"]
# This node has no GPU and few CPUs: conf/launcher/slurm.yaml's 8 CPUs and a GPU would be refused.
ONE_CPU = ["launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0"]
JOB_S = 300  # deadline for a sweep or job to end; each takes under a minute here


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher", reason="submitit launcher absent: pip install -e '.[distributed]'"
    )
    absent = missing()
    if absent:
        pytest.skip(
            f"{', '.join(absent)} absent: .ci/run installs Debian's slurmctld slurmd slurm-client slurmdbd munge mariadb-server-core mariadb-client"
        )
    with slurm_cluster() as started:
        yield started


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every training process, here or in a job (sbatch passes the environment on), on one thread of 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def job_times(cluster: Cluster, *jobs: str) -> dict[str, tuple[datetime, datetime]]:
    """Start and end of each allocation of the jobs, by sacct."""
    listed = cluster.run(
        "sacct", "-n", "-X", "-P", "-o", "JobID,Start,End", *[f"-j{job}" for job in jobs]
    ).stdout.split()
    return {
        jid: (datetime.fromisoformat(start), datetime.fromisoformat(end))
        for jid, start, end in (line.split("|") for line in listed)
    }


def peak_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # at one instant, ends first
    peak = open_ = 0
    for _, change in events:
        open_ += change
        peak = max(peak, open_)
    return peak


def submitit_jobs(root: Path) -> list[str]:
    """The SLURM job ids of the submitit launcher's jobs under root: its folders are named for them."""
    return sorted(path.name for path in root.glob("sweeps/*/*/.submitit/*") if path.name.isdigit())


@pytest.mark.scale_out
def test_an_array_job_of_three_workers_runs_one_study(cluster: Cluster, tmp_path: Path) -> None:
    budget = 5
    command = sweep_cmd(tmp_path, "sweep=smoke", *SMALL, "trainer.epochs=1", f"hydra.sweeper.n_trials={budget}")
    started = time.monotonic()
    # --oversubscribe: the three workers share the node's 2 CPUs (the cluster's partition allows it),
    # so they all ask for trials at once, the race an array job of workers makes.
    job = cluster.run(
        "sbatch",
        "--parsable",
        "--array=0-2",
        "--oversubscribe",
        "--cpus-per-task=1",
        f"--chdir={tmp_path}",
        f"--output={tmp_path}/worker-%a.log",
        "--wrap",
        shlex.join(command),
    ).stdout.strip()
    states = cluster.wait_final(job, 3, JOB_S)
    wall = time.monotonic() - started
    logs = {i: (tmp_path / f"worker-{i}.log").read_text() for i in range(3)}
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(3)}, f"{states}: {logs}"
    spans = job_times(cluster, job)
    assert peak_overlap(list(spans.values())) == 3, f"the three workers did not run at once: {spans}"

    found = trials(tmp_path)
    # The invariant of several workers on one study: numbers 0..N-1, `budget` trials run, no two
    # alike, none RUNNING; a trial asked past the budget by two workers at once is left WAITING.
    assert [t.number for t in found] == list(range(len(found)))
    done = [t for t in found if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == budget and {t.state for t in found} <= {
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.WAITING,
    }, [t.state for t in found]
    assert len({tuple(sorted(t.params.items())) for t in done}) == budget, "a trial was repeated"
    [parent], children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == budget
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(int(c.data.tags["optuna.trial"]) for c in children) == [t.number for t in done]
    assert all(c.info.status == "FINISHED" for c in children), [c.info.status for c in children]
    ran = [int(log.split("this worker ran ")[1].split()[0]) for log in logs.values()]
    print(
        f"\narray job {job}: {states}; trials per worker {ran}; {len(found)} trials "
        f"({', '.join(f'{t.number} {t.state.name}' for t in found)}); one parent FINISHED, {len(children)} children; wall {wall:.0f} s"
    )


@pytest.mark.scale_out
def test_one_run_over_two_slurm_tasks_is_one_run_of_both_ranks(cluster: Cluster, tmp_path: Path) -> None:
    together, alone = tmp_path / "together", tmp_path / "alone"
    together.mkdir()
    alone.mkdir()
    # As tests/test_streaming.py's torchrun test: the global batch of 50 is 25 images per task.
    common = ["model=convae", "model.width=4", "model.depth=2", "trainer.batch_size=50", "trainer.epochs=2", *SMALL]
    # -m: Hydra uses a launcher only in multirun; with no sweep the basic sweeper launches one job.
    command = [
        sys.executable,
        "-m",
        "colorize.train",
        "-m",
        f"paths.root_dir={together}",
        *ONE_CPU,
        "hydra.launcher.tasks_per_node=2",
        *common,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=JOB_S, cwd=together, env=cluster.env)
    assert result.returncode == 0, result.stderr[-3000:]
    [job] = submitit_jobs(together)
    assert cluster.wait_final(job, 1, JOB_S) == {
        job: "COMPLETED"
    }  # submitit returns once the results are written, before the job ends
    steps = cluster.run("sacct", "-n", "-P", "-o", "JobID,NTasks,State", f"-j{job}").stdout.split()
    assert f"{job}.0|2|COMPLETED" in steps, f"srun's step should be 2 tasks: {steps}"
    task_logs = sorted(together.glob(f"sweeps/*/*/.submitit/{job}/{job}_*_log.out"))  # submitit's, one per task
    assert len(task_logs) == 2 and all("training starts" in log.read_text() for log in task_logs), task_logs
    [run] = runs(together)  # rank 0 alone tracks: two tasks that had not joined would be two runs
    assert run.info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert run_cli("train", alone, *common).returncode == 0
    [single] = runs(alone)
    # Both ranks' losses combined: the same global batch in one process gives the same losses (BatchNorm sees 25 images at a time).
    assert run.data.metrics["train_loss"] == pytest.approx(single.data.metrics["train_loss"], rel=0.1)
    assert run.data.metrics["val_loss"] == pytest.approx(single.data.metrics["val_loss"], rel=0.1)
    print(
        f"\njob {job}: {steps}; train_loss {run.data.metrics['train_loss']:.5f} over 2 tasks, {single.data.metrics['train_loss']:.5f} in one process"
    )


@pytest.mark.scale_out
def test_a_batch_script_of_several_tasks_is_one_process(cluster: Cluster, tmp_path: Path) -> None:
    # `sbatch -n 2` runs its script once; only srun's steps are several processes. SLURM_NTASKS says 2
    # in both, so colorize.distributed counts the step's tasks, and maps them only in submitit's jobs.
    probe = (
        "from colorize import distributed; ranks = distributed.setup(100); print(f'rank {ranks.rank} of {ranks.world}')"
    )
    job = cluster.run(
        "sbatch",
        "--parsable",
        "-n",
        "2",
        f"--output={tmp_path}/probe.log",
        "--wrap",
        shlex.join([sys.executable, "-c", probe]),
    ).stdout.strip()
    assert cluster.wait_final(job, 1, JOB_S) == {job: "COMPLETED"}, (tmp_path / "probe.log").read_text()
    assert (tmp_path / "probe.log").read_text().strip() == "rank 0 of 1"


@pytest.mark.scale_out
def test_trials_as_slurm_jobs_run_n_jobs_at_once_and_are_pruned_in_their_jobs(cluster: Cluster, tmp_path: Path) -> None:
    prune = [
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "optimizer.lr=tag(log, interval(1e-4, 1.0))",
        # Trials 0 and 1 alike (the same values, so neither prunes the other, whichever ends first);
        # trial 2, hopeless (Adam at lr 1), is asked only once a worker's trial ended COMPLETE.
        "hydra.sweeper.enqueue=[{optimizer.lr:1e-3,model.width:1},{optimizer.lr:1e-3,model.width:1},{optimizer.lr:1.0,model.width:1}]",
    ]
    command = sweep_cmd(
        tmp_path,
        "sweep=smoke",
        *SMALL,
        "trainer.epochs=2",
        *ONE_CPU,
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=3",
        *prune,
    )
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=JOB_S, cwd=tmp_path, env=cluster.env)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = submitit_jobs(tmp_path)
    states = {job: cluster.wait_final(job, 1, JOB_S)[job] for job in jobs}
    assert len(jobs) == 3 and set(states.values()) == {"COMPLETED"}, (
        f"one SLURM job per trial: {states}, {[(t.number, t.state.name, t.user_attrs) for t in trials(tmp_path)]}"
    )
    spans = job_times(cluster, *jobs)
    assert peak_overlap(list(spans.values())) == 2, f"n_jobs=2 trials should run two at a time: {spans}"

    first, second, hopeless = trials(tmp_path)
    assert (first.state, second.state, hopeless.state) == (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED)
    # Each job reported every epoch to its trial, and the pruner's decision stopped the hopeless one's job.
    assert sorted(first.intermediate_values) == sorted(second.intermediate_values) == [1, 2]
    assert sorted(hopeless.intermediate_values) == [1] and hopeless.user_attrs["reason"].startswith(
        "pruned: after epoch 1"
    ), hopeless.user_attrs
    [parent], children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED" and {c.data.tags["mlflow.parentRunId"] for c in children} == {
        parent.info.run_id
    }
    assert sorted(c.data.tags["optuna.state"] for c in children) == ["COMPLETE", "COMPLETE", "PRUNED"]
    print(
        f"\ntrial jobs {states}; at most {peak_overlap(list(spans.values()))} at once; trials COMPLETE, COMPLETE, PRUNED; wall {wall:.0f} s"
    )


@pytest.mark.scale_out
def test_a_trial_job_cancelled_mid_trial_fails_that_trial_and_the_sweep_goes_on(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Trial 0 long (1000 epochs, about 150 s), its replacement 1 epoch; the study stops at the first
    # complete trial (any val PSNR reaches 0 dB), so the replacement is its last.
    settings = [
        "trainer.epochs=choice(1000, 1)",
        "hydra.sweeper.enqueue=[{trainer.epochs:1000},{trainer.epochs:1}]",
        "hydra.sweeper.stop.target=0",
    ]
    command = sweep_cmd(tmp_path, "sweep=smoke", *SMALL, *ONE_CPU, "hydra.sweeper.n_trials=2", *settings)
    with open(tmp_path / "sweep.log", "w") as log:
        sweep = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=cluster.env)
        try:
            deadline = time.monotonic() + JOB_S

            def reported() -> bool:
                """Trial 0's job has trained and reported an epoch: it is mid-trial. Looked at once
                its job is submitted, so the study exists (this process must not create the tables)."""
                return bool(submitit_jobs(tmp_path)) and bool(trials(tmp_path)[0].intermediate_values)

            while not reported():
                assert sweep.poll() is None and time.monotonic() < deadline, (
                    f"trial 0 never reported: {(tmp_path / 'sweep.log').read_text()[-3000:]}"
                )
                time.sleep(0.5)
            [cancelled] = submitit_jobs(tmp_path)
            cluster.run("scancel", cancelled)
            code = sweep.wait(timeout=JOB_S)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()
    output = (tmp_path / "sweep.log").read_text()
    raised = [line for line in output.splitlines() if re.match(r"[\w.]+(Error|Exception): ", line)]
    assert code == 0 and not raised, f"the sweep exited {code}: {raised[:1]}"
    jobs = submitit_jobs(tmp_path)
    assert cluster.wait_final(cancelled, 1, JOB_S) == {cancelled: "CANCELLED"} and len(jobs) == 2
    lost, replacement = trials(tmp_path)
    assert lost.state == TrialState.FAIL and lost.user_attrs.get("worker_stopped"), (
        lost.user_attrs
    )  # not counted: replaced
    assert replacement.state == TrialState.COMPLETE and replacement.params["trainer.epochs"] == 1
    [parent], children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["optuna.trial"]: c.info.status for c in children} == {"0": "KILLED", "1": "FINISHED"}
    print(
        f"\njob {cancelled} CANCELLED mid-trial: trial 0 {lost.state.name} ({lost.user_attrs['reason']}), replaced by trial 1 "
        f"{replacement.state.name}; runs KILLED, FINISHED; parent FINISHED"
    )
