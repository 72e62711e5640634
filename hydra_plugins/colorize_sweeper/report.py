"""The report at the end of a sweep: the best trials' table, the command that repeats the best, and
the study's plots for the parent run."""

import logging
import shlex
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from colorize.errors import one_line
from hydra_plugins.colorize_sweeper.space import quote

log = logging.getLogger(__name__)

BEST_SHOWN = 5  # rows of the table


def best_first(study: optuna.Study) -> list[FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def states(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def command(fixed: dict, params: dict) -> str:
    """The single run that repeats a trial: this command's plain overrides (sweep=<name> gives the
    sweep's fixed settings) and the trial's values, without -m."""
    argv = sys.orig_argv  # spawn.py gives its workers the first process's
    start = ["python", "-m", argv[2]] if len(argv) > 2 and argv[1] == "-m" else ["python", *argv[1:2]]
    given = [value for key, value in fixed.items() if not key.startswith("hydra.")]
    return shlex.join([*start, *given, *(f"{k}={quote(v)}" for k, v in params.items())])


def results(study: optuna.Study, fixed: dict) -> Optional[dict[str, Any]]:
    """What optimization_results.yaml holds, keyed as hydra-optuna-sweeper writes it (best_params and
    best_value, or the Pareto front as solutions); None when no trial completed."""
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.number)
        if not front:
            return None
        solutions = [{"number": t.number, "params": t.params, "values": t.values} for t in front]
        return {"name": "optuna", "study": study.study_name, "solutions": solutions}
    ranked = best_first(study)
    if not ranked:
        return None
    best = ranked[0]
    return {
        "name": "optuna",
        "study": study.study_name,
        "best_trial": best.number,
        "best_params": best.params,
        "best_value": best.value,
        "command": command(fixed, best.params),
    }


def print_table(study: optuna.Study, fixed: dict, sweep_dir: Path, n_trials: int) -> None:
    """The study's counts and best trials on stdout, and optimization_results.yaml in sweep_dir."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states(study).items()))
    print(f"\nstudy {study.study_name}: {counts}; n_trials={n_trials} is the study's total over every run and worker")
    found = results(study, fixed)
    if found is None:
        print("no trial completed")
        return
    OmegaConf.save(OmegaConf.create(found), sweep_dir / "optimization_results.yaml")
    if "solutions" in found:
        print(f"Pareto front ({', '.join(d.name.lower() for d in study.directions)}):")
        for solution in found["solutions"]:
            print(f"  trial {solution['number']}: values {solution['values']}  params {solution['params']}")
        return
    ranked = best_first(study)
    keys = list(ranked[0].params)
    print(f"best trials ({study.direction.name.lower()}):")
    rows = [["trial", "value", *keys, "seconds"]]
    for t in ranked[:BEST_SHOWN]:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append([str(t.number), f"{t.value:.4f}", *(f"{t.params.get(k, '')}" for k in keys), f"{seconds:.0f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
    print(f"reproduce the best (trial {found['best_trial']}):\n  {found['command']}\n")


def summarize(study: optuna.Study, fixed: dict) -> Optional[dict[str, Any]]:
    """The parent run's summary (ParentRun.summary's arguments); None when no trial completed."""
    found = results(study, fixed)
    if found is None:
        return None
    counts = {f"trials_{s.lower()}": n for s, n in states(study).items()}
    texts = {"best.yaml": OmegaConf.to_yaml(OmegaConf.create(found))}
    if "solutions" in found:
        return {"metrics": {"pareto_trials": len(found["solutions"]), **counts}, "tags": {}, "figures": {}, "texts": texts}
    params = found["best_params"]
    return {
        "metrics": {"best_value": found["best_value"], **counts},
        "tags": {"best.trial": str(found["best_trial"]), "best.command": found["command"], **{f"best.{k}": str(v) for k, v in params.items()}},
        "figures": plots(study),
        "texts": texts,
    }


def plots(study: optuna.Study) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import optuna.visualization.matplotlib as vis

    figures = {}
    plotters = {
        "plots/optimization_history.png": vis.plot_optimization_history,
        "plots/param_importances.png": vis.plot_param_importances,
        "plots/parallel_coordinate.png": vis.plot_parallel_coordinate,
    }
    for name, plot in plotters.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib backend is experimental in Optuna
            try:
                axes = plot(study)
            except Exception as error:  # e.g. importances need two or more complete trials
                log.info("no %s: %s", name, one_line(error))
                continue
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figure = axes.figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        figures[name] = figure
    return figures
