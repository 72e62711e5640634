"""MLflow tracking: the only module that imports mlflow."""

import re
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import matplotlib.pyplot as plt
import mlflow
import torch
from matplotlib.figure import Figure
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from torch import nn

from colorize.config import ColorizeError

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def hide_password(uri: str) -> str:
    return re.sub(r"(//[^:/@]+:)[^@]+@", r"\1***@", uri)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, the form MLflow params take."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def git_commit(cwd: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _experiment_id(name: str, uri: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the database, not in ./mlruns of whatever directory the run started in.
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it first
        return mlflow.get_experiment_by_name(name).experiment_id


class Tracker:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        mlflow.log_metrics(dict(values), step=step)

    def figure(self, figure: Figure, artifact_file: str) -> None:
        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)  # pyplot keeps every figure alive until closed

    def artifact(self, path: Path, folder: Optional[str] = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=folder)

    def text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file)

    def model(self, model: nn.Module, example: torch.Tensor) -> None:
        """Log as an MLflow model; `example` needs a batch of 2 or more, or export fixes the batch size."""
        model.eval()
        with torch.no_grad():
            output = model(example).cpu().numpy()
        example_np = example.cpu().numpy()
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example_np, output),
            input_example=example_np,
            # Given, not inferred: inference re-imports the model in a subprocess (seconds).
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "colorize"],
        )


@contextmanager
def start_run(
    uri: str,
    experiment: str,
    run_name: Optional[str],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    resume_run_id: Optional[str] = None,
) -> Iterator[Tracker]:
    """An MLflow run that ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C / SIGTERM."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = _experiment_id(experiment, uri)
        if resume_run_id and not _run_exists(resume_run_id):
            resume_run_id = None
        run = mlflow.start_run(run_id=resume_run_id, experiment_id=experiment_id, run_name=run_name)
    except MlflowException as error:
        raise ColorizeError(f"tracking.uri={hide_password(uri)}: {error.message.splitlines()[0]}") from None
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        if resume_run_id is None:
            mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()})
        mlflow.set_tags(dict(tags))
        yield Tracker(run.info.run_id)
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        mlflow.end_run(status)


def download_checkpoint(uri: str, tracking_uri: str, artifact: str = "checkpoints/best.pt") -> Path:
    """The checkpoint a run logged, for a runs:/<run_id>/... URI: it holds the weights and the
    config (so the model's class and target space are known), which the logged model alone lacks."""
    run_id = uri.removeprefix("runs:/").split("/")[0]
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact))
    except (MlflowException, OSError) as error:
        reason = (str(getattr(error, "message", error)).splitlines() or [""])[0]
        raise ColorizeError(f"checkpoint={uri}: cannot fetch {artifact} of run {run_id} from {hide_password(tracking_uri)} ({reason})") from None


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        return False
    return True
