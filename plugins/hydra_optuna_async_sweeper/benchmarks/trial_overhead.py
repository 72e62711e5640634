"""Seconds per trial of an instant objective, side by side in one run: hydra-optuna-sweeper (PyPI, in a
venv of its own), this sweeper in memory, on SQLite, and on SQLite with an MLflow parent run.

    python benchmarks/trial_overhead.py [--official-venv /tmp/official-venv] [--rounds 3] [--write docs/results/overhead.md]

Each setting sweeps the same app (x**2 over interval(-10, 10), random sampler, seed 0) with a small
and a large n_trials; the seconds per trial are the difference of the two wall times over the
difference of the trial counts, so start-up (imports, the parent run) drops out, and what is left is
what each trial costs: Hydra composing the job, the ask, the job, the tell, and the sweeper's own
bookkeeping. Settings alternate within each round (a first round warms up: the databases are made
then) and the median of the rounds is kept.
"""

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import page

APP = """
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=".", config_name="{config}")
def sphere(cfg: DictConfig) -> float:
    return cfg.x**2


if __name__ == "__main__":
    sphere()
"""
CONFIG = """
defaults:
  - override hydra/sweeper: {sweeper}
  - override hydra/sweeper/sampler: random

hydra:
  sweeper:
    sampler:
      seed: 0
    direction: minimize
    n_jobs: 1
    params:
      x: interval(-10, 10)
  job_logging:
    root:
      level: WARNING
x: 0
"""
# Its newest release (its development branch is not on PyPI), on our Hydra: pip would take 1.4.0rc3.
OFFICIAL = ["hydra-optuna-sweeper==1.3.0", "hydra-core>=1.3,<1.4"]


def official_python(folder: Path) -> str:
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"making {folder} with {' '.join(OFFICIAL)} (once)", flush=True)
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *OFFICIAL], check=True)
    return str(python)


def wall(python: str, app: Path, n_trials: int, extra: list[str], work: Path) -> float:
    sweep_dir = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    subprocess.run(
        [python, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.n_trials={n_trials}", *extra],
        check=True,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-venv", type=Path, default=Path(tempfile.gettempdir()) / "official-venv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=50)
    parser.add_argument("--write", type=Path, help="also write the table as a results page here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trial-overhead-"))
    for name, sweeper in (("official", "optuna"), ("ours", "optuna_async")):
        (work / f"{name}.yaml").write_text(CONFIG.format(sweeper=sweeper))
        (work / f"{name}.py").write_text(APP.format(config=name))
    official = official_python(args.official_venv)
    # A database per setting, made by the warm-up round; each sweep is a study of its own in it.
    settings = {
        "hydra-optuna-sweeper 1.3.0, in memory": (official, "official", lambda run: []),
        "this sweeper, in memory": (sys.executable, "ours", lambda run: []),
        "this sweeper, SQLite": (
            sys.executable,
            "ours",
            lambda run: [f"hydra.sweeper.storage=sqlite:///{work}/sqlite.db", f"hydra.sweeper.study_name={run}"],
        ),
        "this sweeper, SQLite + MLflow parent": (
            sys.executable,
            "ours",
            lambda run: [
                f"hydra.sweeper.storage=sqlite:///{work}/parent.db",
                f"hydra.sweeper.study_name={run}",
                f"hydra.sweeper.mlflow.tracking_uri=sqlite:///{work}/mlflow.db",
            ],
        ),
    }
    per_trial: dict[str, list[float]] = {name: [] for name in settings}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, (python, app, extra) in settings.items():
            small = wall(python, work / f"{app}.py", args.small, extra(f"r{round_}-small"), work)
            large = wall(python, work / f"{app}.py", args.large, extra(f"r{round_}-large"), work)
            if round_ > 0:
                per_trial[name].append((large - small) / (args.large - args.small))
    base = statistics.median(per_trial["this sweeper, in memory"])
    lines = [
        f"seconds per trial of an instant objective ({args.large} vs {args.small} trials, median of {args.rounds} rounds)",
        f"{'setting':<40} {'s/trial':>8} {'vs ours in memory':>18}",
    ]
    for name, values in per_trial.items():
        lines.append(f"{name:<40} {statistics.median(values):>8.3f} {statistics.median(values) / base:>17.2f}x")
    print("\n".join(lines))
    if args.write:
        page.write(
            args.write,
            "What a trial costs",
            "\n".join(lines),
            f"Python {platform.python_version()}; the official plugin in a venv of its own ({' '.join(OFFICIAL)}).",
        )


if __name__ == "__main__":
    main()
