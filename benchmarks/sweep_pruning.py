"""Does pruning pay? The same seeded sweep run twice, without a pruner and with one, side by side.

    python benchmarks/sweep_pruning.py                      # successive halving, 12 trials x 6 epochs
    python benchmarks/sweep_pruning.py --pruner hyperband
    python benchmarks/sweep_pruning.py --pruner median --trials 20 --epochs 10

Both sweeps draw their trials from the same seeded random sampler, so they try the same learning
rates and widths on the same data; they differ only in which trials stop early. Prints, for each:
trials by state, epochs trained, wall time and the best val PSNR; then the ratios. Target: pruning
trains at most half the epochs and finds a best value within 0.2 dB of the unpruned sweep.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna


def run_sweep(root: Path, pruner: str, args: argparse.Namespace) -> dict:
    study = f"bench-{pruner}"
    command = [
        sys.executable,
        "-m",
        "colorize.train",
        "-m",
        "sweep=lr_width",
        f"paths.root_dir={root}",
        f"data.limit={args.images}",
        f"trainer.epochs={args.epochs}",
        "tracking.grid_every=1000",  # grids only at the first and last epoch
        "hydra/sweeper/sampler=random",  # the same draws in both sweeps: pruning does not steer them
        f"hydra.sweeper.sampler.seed={args.seed}",
        f"hydra/sweeper/pruner={pruner}",
        f"hydra.sweeper.n_trials={args.trials}",
        f"hydra.sweeper.study_name={study}",
    ]
    if pruner == "hyperband":
        command.append(f"hydra.sweeper.pruner.max_resource={args.epochs}")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=root)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"sweep with pruner={pruner} failed:\n{result.stderr[-3000:]}")
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{root}/sweeps/optuna.db").get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "states": Counter(t.state.name for t in trials),
        "epochs": sum(len(t.intermediate_values) for t in trials),  # one report per trained epoch
        "seconds": seconds,
        "best": max(t.value for t in complete),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruner", default="successive_halving", choices=["median", "hyperband", "successive_halving"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=600, help="data.limit: sample patches, 80%% for training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, help="where the sweeps write (default: a temporary folder)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(
            f"sweep=lr_width, random sampler seed {args.seed}: {args.trials} trials x {args.epochs} epochs on {args.images} sample patches"
        )
        results = {name: run_sweep(root, name, args) for name in ("none", args.pruner)}
    print(f"{'pruner':>10}  {'trials':>24}  {'epochs':>6}  {'wall s':>7}  {'best val PSNR dB':>16}")
    for name, r in results.items():
        states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(r["states"].items()))
        print(f"{name:>10}  {states:>24}  {r['epochs']:>6}  {r['seconds']:>7.1f}  {r['best']:>16.3f}")
    base, pruned = results["none"], results[args.pruner]
    epoch_ratio = pruned["epochs"] / base["epochs"]
    gap = base["best"] - pruned["best"]
    print(
        f"{args.pruner} / none: epochs {epoch_ratio:.2f}x, wall time {pruned['seconds'] / base['seconds']:.2f}x, best value {-gap:+.3f} dB"
    )
    verdict = "met" if epoch_ratio <= 0.5 and gap <= 0.2 else "NOT met"
    print(f"target (epochs <= 0.5x, best within 0.2 dB): {verdict}")


if __name__ == "__main__":
    main()
