"""The last lines every command prints: what happened, where it is, and the next commands, with the
paths filled in, so a newcomer (or a log captured to a file) needs nothing from further up."""

import shlex
from pathlib import Path
from typing import Mapping, Optional

# The metrics the summary sets beside the gray copy's, with their units.
SHOWN = {"psnr": "dB", "psnr_per_image": "dB", "colorfulness_ratio": "", "auc_rebalanced": ""}


def against_gray_copy(model: Mapping[str, float], gray_copy: Mapping[str, float]) -> str:
    """`psnr 23.54 dB (gray copy 22.23, +1.31), ...`: the model's figures beside the gray copy's."""
    parts = []
    for name, unit in SHOWN.items():
        if name in model and name in gray_copy:
            parts.append(
                f"{name} {model[name]:.2f}{' ' + unit if unit else ''} (gray copy {gray_copy[name]:.2f}, {model[name] - gray_copy[name]:+.2f})"
            )
    return ", ".join(parts)


def command(*words: str) -> str:
    return shlex.join(["python", "-m", *words])


def of_training(
    run: tuple[str, str, str],
    run_id: str,
    epochs: int,
    val: Mapping[str, float],
    gray_copy: Mapping[str, float],
    checkpoints: Path,
    tracking_uri: str,
) -> str:
    """`run`: the run's name, its UI page and the command serving the UI (colorize.tracking.run_page)."""
    name, page, serve = run
    best, last = checkpoints / "best.pt", checkpoints / "last.pt"
    lines = [
        f"run {name} finished: {epochs} epochs; on its val split {against_gray_copy(val, gray_copy)}",
        f"  checkpoints: {best} (lowest val loss), {last}",
        f"  in the MLflow UI: {page}" + (f"  (serve it with: {serve})" if serve else ""),
        "next:",
        f"  {command('colorize.evaluate', f'checkpoint={best}')}",
        f"  {command('colorize.colorize', f'checkpoint={best}', 'input=<photo or folder>', 'output=colourised/')}",
        f"  {command('colorize.train', f'trainer.resume={last}', f'trainer.epochs={epochs + 10}')}",
        f"  MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)} mlflow models serve -m runs:/{run_id}/model --env-manager local --port 5001",
    ]
    return "\n".join(lines)


def of_evaluation(
    checkpoint: str,
    report: Path,
    model: Mapping[str, float],
    gray_copy: Mapping[str, float],
    photos: Optional[str] = None,
) -> str:
    where = f"on the photos of {photos}" if photos else "on its test images"
    given = f"input={photos}" if photos else "input=<photo or folder>"
    return "\n".join(
        [
            f"{checkpoint} {where}: {against_gray_copy(model, gray_copy)}",
            f"  the report: {report}",
            "next:",
            f"  {command('colorize.colorize', f'checkpoint={checkpoint}', given, 'output=colourised/')}",
        ]
    )


def of_photos(written: int, given: int, output: Path, checkpoint: str) -> str:
    return "\n".join(
        [
            f"wrote {written} of {given} photos to {output} (PNG, each at its own size)",
            "next:",
            f"  {command('colorize.evaluate', f'checkpoint={checkpoint}', 'input=<colour photos>')}   (scores the colouring against the photos' own colour)",
        ]
    )
