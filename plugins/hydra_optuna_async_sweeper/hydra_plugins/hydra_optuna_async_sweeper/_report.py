"""The report at the end of a sweep: the best trials' table (the Pareto front's, for several
objectives), the commands that repeat them, and the study's plots and tags for the parent run."""

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

from hydra_plugins.hydra_optuna_async_sweeper import _stopping as stopping
from hydra_plugins.hydra_optuna_async_sweeper._errors import mask, one_line
from hydra_plugins.hydra_optuna_async_sweeper._space import quote
from hydra_plugins.hydra_optuna_async_sweeper.trial import BASELINE, RUN

log = logging.getLogger(__name__)

BEST_SHOWN = 5  # rows of the table
FRONT = "optuna.pareto_front"  # child run tag: "true" on the runs of the Pareto front's trials, "false" on the other complete ones


def best_first(study: optuna.Study) -> list[FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front of a study of several objectives, by trial number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def objective_names(study: optuna.Study) -> list[str]:
    """The names hydra.sweeper.metric_names gave the objectives, else `value 0`, `value 1`, ..."""
    return study.metric_names or [f"value {i}" for i in range(len(study.directions))]


def states(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


# The command line's flags that take the next word as their value (Hydra's own).
VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--info", "--experimental-rerun"}
# Overrides that only shape the sweep: a single run needs none of them.
SWEEP_ONLY = ("hydra.sweep.", "hydra.sweeper.", "hydra/sweeper", "hydra.launcher.", "hydra/launcher")


def command(params: dict) -> str:
    """The single run that repeats a trial: this process's own command as typed (the interpreter and
    its options, `-m module` or the script, Hydra's flags, the fixed overrides), without -m/--multirun
    and the sweep's own keys, with the trial's values in place of the searched ones. Passwords masked."""
    argv, given = sys.orig_argv, sys.argv[1:]  # orig_argv: the whole command; argv: the app's part of it
    kept, words = [], iter(given)
    for word in words:
        if word in ("-m", "--multirun"):
            continue
        if word.startswith("-"):
            kept.append(word)
            if word in VALUE_FLAGS:
                kept.append(next(words, ""))
            continue
        key = word.partition("=")[0].lstrip("+~")
        if key not in params and not key.startswith(SWEEP_ONLY):
            kept.append(word)
    start = argv[: len(argv) - len(given)]
    return mask(shlex.join([*start, *kept, *(f"{k}={quote(v)}" for k, v in params.items())]))


def results(study: optuna.Study) -> Optional[dict[str, Any]]:
    """What optimization_results.yaml holds, keyed as hydra-optuna-sweeper writes it (best_params and
    best_value, or the Pareto front as solutions); None when no trial completed."""
    if len(study.directions) > 1:
        members = front(study)
        if not members:
            return None
        solutions = [
            {"number": t.number, "params": t.params, "values": t.values, "command": command(t.params)} for t in members
        ]
        return {
            "name": "optuna",
            "study": study.study_name,
            "metric_names": objective_names(study),
            "solutions": solutions,
        }
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
        "command": command(best.params),
    }


def print_table(study: optuna.Study, sweep_dir: Path, n_trials: int) -> None:
    """The study's counts and best trials on stdout, and optimization_results.yaml in sweep_dir."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states(study).items()))
    print(f"\nstudy {study.study_name}: {counts}; n_trials={n_trials} is the study's total over every run and worker")
    stopped = stopping.standing(study, n_trials)
    if stopped is not None:
        print(f"stopped before n_trials: {stopped}")
    found = results(study)
    if found is None:
        print("no trial completed")
        return
    OmegaConf.save(OmegaConf.create(found), sweep_dir / "optimization_results.yaml")
    if "solutions" in found:
        names = found["metric_names"]
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        goals = ", ".join(f"{d.name.lower()} {name}" for d, name in zip(study.directions, names))
        print(f"Pareto front: {len(found['solutions'])} of {complete} complete trials ({goals}):")
        print_rows(front(study), names)
        print("reproduce them:")
        for solution in found["solutions"]:
            print(f"  trial {solution['number']}: {solution['command']}")
        print()
        return
    print(f"best trials ({study.direction.name.lower()}):")
    print_rows(best_first(study)[:BEST_SHOWN], ["value"])
    compared = beside_baseline(study)
    if compared:
        print(compared)
    print(f"reproduce the best (trial {found['best_trial']}):\n  {found['command']}\n")


def beside_baseline(study: optuna.Study) -> Optional[str]:
    """The best trial against the baseline its job recorded (user attribute BASELINE), in one line."""
    best = best_first(study)[0]
    baseline = best.user_attrs.get(BASELINE)
    if not isinstance(baseline, dict) or not isinstance(baseline.get("value"), (int, float)):
        return None
    name, value = baseline.get("name", "baseline"), float(baseline["value"])
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    if (best.value > value) if maximize else (best.value < value):
        return f"the best trial beats the {name} ({value:.4f}) by {abs(best.value - value):.4f}"
    return f"no trial beat the {name}: {value:.4f}, the best trial {best.value:.4f}"


def print_rows(trials: list[FrozenTrial], names: list[str]) -> None:
    """One right-aligned row per trial: its number, values, params and seconds."""
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = [["trial", *names, *keys, "seconds"]]
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append(
            [
                str(t.number),
                *(f"{v:.4f}" for v in t.values),
                *(f"{t.params.get(k, '')}" for k in keys),
                f"{seconds:.0f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths)))


def summarize(study: optuna.Study, n_trials: int) -> Optional[dict[str, Any]]:
    """The parent run's summary (ParentRun.summary's arguments); None when no trial completed."""
    found = results(study)
    if found is None:
        return None
    counts = {f"trials_{s.lower()}": n for s, n in states(study).items()}
    texts = {"best.yaml": OmegaConf.to_yaml(OmegaConf.create(found))}
    if "solutions" in found:
        members = {s["number"] for s in found["solutions"]}
        # Every complete trial's run is tagged, not only the front's: a resumed study's front moves.
        children = {
            t.user_attrs[RUN]: {FRONT: str(t.number in members).lower()}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if RUN in t.user_attrs
        }
        return {
            "metrics": {"pareto_trials": len(members), **counts},
            "tags": {"pareto.trials": ",".join(str(n) for n in sorted(members))},
            "figures": plots(study),
            "texts": texts,
            "children": children,
        }
    params = found["best_params"]
    stopped = stopping.standing(study, n_trials)
    return {
        "metrics": {"best_value": found["best_value"], **counts},
        "tags": {
            "best.trial": str(found["best_trial"]),
            "best.command": found["command"],
            **{f"best.{k}": str(v) for k, v in params.items()},
            **({"stop.reason": stopped} if stopped else {}),
            **({"best.against_baseline": compared} if (compared := beside_baseline(study)) else {}),
        },
        "figures": plots(study),
        "texts": texts,
    }


def plots(study: optuna.Study) -> dict[str, Any]:
    """The history, importances and parallel coordinates of one objective; the Pareto front of
    two or three (Optuna draws no other number, and the others need one objective chosen)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import optuna.visualization.matplotlib as vis

    figures = {}
    if len(study.directions) == 1:
        plotters = {
            "plots/optimization_history.png": vis.plot_optimization_history,
            "plots/param_importances.png": vis.plot_param_importances,
            "plots/parallel_coordinate.png": vis.plot_parallel_coordinate,
        }
    else:
        plotters = {"plots/pareto_front.png": lambda s: vis.plot_pareto_front(s, target_names=objective_names(s))}
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
