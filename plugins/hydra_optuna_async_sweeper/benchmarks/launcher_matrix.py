"""Which promise holds with which launcher: for Hydra's basic, joblib and submitit-local launchers, on an
in-memory study and on SQLite, 8 trials of tests/apps/pruned.py with hydra.sweeper.n_jobs=2: how many
ran at once (from when each job started and ended) and how many were pruned, or the line that refused
the sweep at its start.

    python benchmarks/launcher_matrix.py [--write docs/results/launchers.md]   # joblib's and submitit's launchers installed
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import page

PLUGIN = Path(__file__).resolve().parents[1]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}


def at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def row(launcher: str, storage: str, pruner: str) -> str:
    work = Path(tempfile.mkdtemp(prefix="matrix-"))
    given = (
        [f"hydra.sweeper.storage=sqlite:///{work}/study.db", "hydra.sweeper.study_name=m"]
        if storage == "sqlite"
        else []
    )
    config = ["--config-name=config"] if pruner == "median" else ["--config-name=unpruned"]  # tests/apps/conf
    done = subprocess.run(
        [
            sys.executable,
            "tests/apps/pruned.py",
            "--multirun",
            *config,
            f"hydra.sweep.dir={work}",
            *LAUNCHERS[launcher],
            "hydra.sweeper.n_jobs=2",
            "step_s=0.3",
            f"record={work}/spans.txt",
            f"report={pruner == 'median'}",
            *given,
        ],
        cwd=PLUGIN,
        capture_output=True,
        text=True,
        timeout=900,
    )
    head = f"{launcher:<15} {storage:<7} {pruner:<7}"
    if done.returncode != 0:
        return f"{head} {'-':>8}  refused: {done.stderr.strip().splitlines()[-1]}"
    spans = [tuple(map(float, line.split())) for line in (work / "spans.txt").read_text().splitlines()]
    summary = next(line for line in done.stdout.splitlines() if line.startswith("study "))
    return f"{head} {at_once(spans):>8}  {summary.split(': ', 1)[1].split(';')[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also write the table as a results page here")
    args = parser.parse_args()
    lines = [f"{'launcher':<15} {'storage':<7} {'pruner':<7} {'at once':>8}  trials"]
    for launcher in LAUNCHERS:
        for storage, pruner in (("memory", "median"), ("memory", "none"), ("sqlite", "median")):
            lines.append(row(launcher, storage, pruner))
            print(lines[-1], flush=True)
    if args.write:
        page.write(
            args.write,
            "Trials at once and pruning, by launcher and storage",
            "\n".join(lines),
            "8 trials of tests/apps/pruned.py (5 steps of 0.3 s), hydra.sweeper.n_jobs=2.",
        )


if __name__ == "__main__":
    main()
