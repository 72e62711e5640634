"""A throwaway one-node SLURM cluster on loopback, for tests: munged with a fresh key, a MariaDB
server behind slurmdbd (submitit learns a job's state from sacct, which needs accounting), slurmctld
and slurmd, every file under one temporary folder and every daemon stopped at the end.

    with slurm_cluster() as cluster:   # SLURM_CONF is exported while it runs
        job = cluster.run("sbatch", "--parsable", "--wrap", "hostname").stdout.strip()
        cluster.wait_final(job, 1, deadline_s=60)   # {"1": "COMPLETED"}
"""

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

# Debian puts the daemons in /usr/sbin, which a non-root PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DAEMONS = ("munged", "mungekey", "mariadb-install-db", "mariadbd", "mariadb-admin", "slurmdbd", "slurmctld", "slurmd")
CLIENTS = ("munge", "sbatch", "sacct", "sacctmgr", "scontrol", "scancel", "squeue", "sinfo", "srun")
CLUSTER = "colorize"
PARTITION = "debug"
START_S = 60  # seconds each daemon may take to answer; here each answers within about 2
STOP_S = 15  # seconds between SIGTERM and SIGKILL when stopping a daemon
FINAL = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)


def missing() -> list[str]:
    """The binaries a cluster needs that are not installed (.ci/run installs them)."""
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=SEARCH_PATH) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, ready: Callable[[], bool], log: Path, deadline_s: float = START_S) -> None:
    """Poll `ready` every 0.2 s until it holds; a RuntimeError with the log's tail past the deadline."""
    deadline = time.monotonic() + deadline_s
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else f"(no {log})"
            raise RuntimeError(f"{what} not ready after {deadline_s} s; {log.name}:\n{tail}")
        time.sleep(0.2)


@dataclass
class Cluster:
    root: Path  # every file of the cluster: configs, state, spool, logs, the database
    conf: Path  # slurm.conf, exported as SLURM_CONF

    @property
    def env(self) -> dict[str, str]:
        """os.environ as it is now (a test's settings too), with SLURM_CONF and the daemons' folder on PATH."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SEARCH_PATH}

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def states(self, job: str) -> dict[str, str]:
        """sacct's state of each of a job's allocations (an array's tasks as `<id>_<index>`), steps left out."""
        listed = self.run(
            "sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job
        ).stdout.splitlines()  # a state may hold spaces: CANCELLED by 0
        return {line.split("|")[0]: line.split("|")[1].split()[0] for line in listed}

    def wait_final(self, job: str, count: int, deadline_s: float) -> dict[str, str]:
        """The states of a job's `count` allocations once sacct shows them all final (COMPLETED,
        FAILED, CANCELLED...); a RuntimeError with slurmctld's log past the deadline."""
        deadline = time.monotonic() + deadline_s
        while True:
            found = self.states(job)
            if len(found) == count and all(state in FINAL for state in found.values()):
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"job {job}: sacct shows {found} after {deadline_s} s, not {count} final states; slurmctld.log:\n{self.log('slurmctld')}"
                )
            time.sleep(0.5)

    def log(self, name: str) -> str:
        """The tail of a daemon's log (slurmctld, slurmd, slurmdbd, mariadb, munged), for failure messages."""
        path = self.root / "log" / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else f"(no {path})"


def node_line(name: str) -> str:
    """This machine as slurmd sees it (its real CPUs, sockets, cores, threads and memory), on loopback."""
    found = subprocess.run(
        [shutil.which("slurmd", path=SEARCH_PATH), "-C"], capture_output=True, text=True, check=True
    ).stdout
    [described] = [line for line in found.splitlines() if line.startswith("NodeName=")]
    hardware = described.split(maxsplit=1)[1]  # drop slurmd's NodeName=<hostname>: ours is given below
    return f"NodeName={name} NodeAddr=127.0.0.1 NodeHostname={name} {hardware} State=UNKNOWN"


def slurm_conf(root: Path, user: str, node: str, ports: dict[str, int]) -> str:
    munge = root / "munge" / "munge.socket"
    return f"""\
ClusterName={CLUSTER}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser={user}
SlurmdUser={user}
# This cluster's munged, not the system's: daemons and clients alike, and (AccountingStoragePass
# names the socket) the connections to slurmdbd.
AuthType=auth/munge
AuthInfo=socket={munge}
CredType=cred/munge
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={munge}
JobAcctGatherType=jobacct_gather/none
# No cgroups in a container: processes are tracked through /proc, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
MailProg=/bin/true
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ReturnToService=2
# A job asking for more than the node has is refused at submission instead of pending for ever.
EnforcePartLimits=ALL
# scancel: SIGTERM, then SIGKILL 5 s later (default 30).
KillWait=5
{node_line(node)}
# OverSubscribe=YES: jobs that ask (sbatch --oversubscribe) may share CPUs, e.g. sweep workers.
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def slurmdbd_conf(root: Path, user: str, ports: dict[str, int]) -> str:
    return f"""\
AuthType=auth/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser={user}
PidFile={root / "slurmdbd.pid"}
LogFile={root / "log" / "slurmdbd.log"}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=root
StorageLoc=slurm_acct_db
"""


@contextlib.contextmanager
def slurm_cluster() -> Iterator[Cluster]:
    """Start the cluster (a few seconds), yield it, stop it and remove its folder, also on failure."""
    user = getpass.getuser()
    # A short path: munged's and MariaDB's Unix sockets live in it (108 characters at most).
    root = Path(tempfile.mkdtemp(prefix="colorize-slurm-"))
    for folder in ("munge", "etc", "state", "spool", "log", "db"):
        (root / folder).mkdir(mode=0o700)
    node = socket.gethostname().split(".")[0]
    ports = {name: free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
    conf = root / "etc" / "slurm.conf"
    conf.write_text(slurm_conf(root, user, node, ports))
    dbd_conf = root / "etc" / "slurmdbd.conf"  # slurmdbd reads it beside SLURM_CONF; it must be private
    dbd_conf.write_text(slurmdbd_conf(root, user, ports))
    dbd_conf.chmod(0o600)
    cluster = Cluster(root, conf)
    daemons: dict[str, subprocess.Popen] = {}  # in start order

    def start(name: str, *command: str) -> None:
        log = open(root / "log" / f"{name}.out", "w")
        # Its own session: stopped with its process group, whatever it forked.
        daemons[name] = subprocess.Popen(
            [shutil.which(command[0], path=SEARCH_PATH), *command[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=cluster.env,
            start_new_session=True,
        )

    def answers(*command: str) -> bool:
        return cluster.run(*command, check=False).returncode == 0

    try:
        munge = root / "munge"
        subprocess.run(
            [shutil.which("mungekey", path=SEARCH_PATH), "--create", f"--keyfile={munge / 'munge.key'}"],
            check=True,
            capture_output=True,
        )
        # --force: the key folder is private to this user, which munged would otherwise refuse for its socket.
        start(
            "munged",
            "munged",
            "--foreground",
            "--force",
            "--num-threads=10",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={munge / 'munge.key'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={root / 'log' / 'munged.log'}",
        )
        wait_for(
            "munged", lambda: answers("munge", "-n", f"--socket={munge / 'munge.socket'}"), root / "log" / "munged.log"
        )

        data, db_socket = root / "db" / "data", root / "db" / "mariadb.sock"
        # --user: MariaDB refuses to run as root unless told to. Its root account (slurmdbd's) has no password.
        subprocess.run(
            [
                shutil.which("mariadb-install-db", path=SEARCH_PATH),
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        # slurmdbd warns below a 128M buffer pool and a 900 s lock wait.
        start(
            "mariadb",
            "mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={db_socket}",
            f"--port={ports['mariadb']}",
            "--bind-address=127.0.0.1",
            f"--user={user}",
            f"--pid-file={root / 'db' / 'mariadb.pid'}",
            f"--log-error={root / 'log' / 'mariadb.log'}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--innodb-lock-wait-timeout=900",
        )
        wait_for(
            "mariadbd",
            lambda: answers("mariadb-admin", "--no-defaults", f"--socket={db_socket}", "--user=root", "ping"),
            root / "log" / "mariadb.log",
        )

        start("slurmdbd", "slurmdbd", "-D")
        wait_for("slurmdbd", lambda: answers("sacctmgr", "-n", "list", "cluster"), root / "log" / "slurmdbd.log")
        # -i: no state to recover from; slurmctld registers the cluster in slurmdbd itself.
        start("slurmctld", "slurmctld", "-D", "-i")
        wait_for(
            "slurmctld",
            lambda: "UP" in cluster.run("scontrol", "ping", check=False).stdout,
            root / "log" / "slurmctld.log",
        )
        start("slurmd", "slurmd", "-D", "-N", node)
        wait_for(
            "slurmd",
            lambda: cluster.run("sinfo", "-h", "-n", node, "-o", "%T", check=False).stdout.strip() == "idle",
            root / "log" / "slurmd.log",
        )
        wait_for("sacct", lambda: answers("sacct", "-n", "-X"), root / "log" / "slurmdbd.log")
        saved = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(conf)  # for sacct and submitit called from the test's own process
        try:
            yield cluster
        finally:
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
    finally:
        if (
            "slurmctld" in daemons and daemons["slurmctld"].poll() is None
        ):  # slurmctld runs: end the jobs before the daemons
            cluster.run("scancel", f"--user={user}", check=False)
            with contextlib.suppress(RuntimeError):
                # Until slurmd has killed every job's processes (they run in slurmstepd's sessions, not ours).
                wait_for(
                    "no jobs left",
                    lambda: cluster.run("squeue", "-h", check=False).stdout.strip() == "",
                    root / "log" / "slurmctld.log",
                    STOP_S,
                )
        for daemon in reversed(daemons.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        shutil.rmtree(root, ignore_errors=True)
