"""MLflow tracking: the only module that imports mlflow."""

import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import matplotlib.pyplot as plt
import mlflow
import requests  # mlflow's own HTTP client
import torch
from matplotlib.figure import Figure
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from torch import nn

from colorize.errors import ColorizeError, first_line

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def hide_password(uri: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]+@", r"\1***@", uri)  # the user may be empty: postgresql://:pw@host/db


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
    def __init__(self, run_id: Optional[str]) -> None:
        self.run_id = run_id

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        mlflow.log_metrics(dict(values), step=step)

    def has_metric(self, key: str) -> bool:
        return key in mlflow.get_run(self.run_id).data.metrics

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


class Untracked(Tracker):
    """What the other processes of a multi-process run hold: rank 0 alone records the run."""

    def __init__(self) -> None:
        super().__init__(run_id=None)

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        pass

    def has_metric(self, key: str) -> bool:
        return True

    def figure(self, figure: Figure, artifact_file: str) -> None:
        plt.close(figure)

    def artifact(self, path: Path, folder: Optional[str] = None) -> None:
        pass

    def text(self, text: str, artifact_file: str) -> None:
        pass

    def model(self, model: nn.Module, example: torch.Tensor) -> None:
        pass


@contextmanager
def untracked() -> Iterator[Tracker]:
    yield Untracked()


@contextmanager
def start_run(
    uri: str,
    experiment: str,
    run_name: Optional[str],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    resume_run_id: Optional[str] = None,
    parent_run_id: Optional[str] = None,
) -> Iterator[Tracker]:
    """An MLflow run that ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C / SIGTERM."""
    check_server(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = _experiment_id(experiment, uri)
        if resume_run_id and not _run_exists(resume_run_id):
            resume_run_id = None
        run = mlflow.start_run(run_id=resume_run_id, experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id)
    except MlflowException as error:
        raise ColorizeError(f"tracking.uri={hide_password(uri)}: {hide_password(first_line(error))}") from None
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        if resume_run_id is None:
            mlflow.log_params({k: hide_password(str(v))[:MAX_PARAM_CHARS] for k, v in params.items()})
        mlflow.set_tags({k: hide_password(str(v)) for k, v in tags.items()})
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
        raise ColorizeError(f"checkpoint={uri}: cannot fetch {artifact} of run {run_id} from {hide_password(tracking_uri)} ({first_line(error)})") from None


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        return False
    return True


def check_server(uri: str, attempts: int = 3) -> None:
    """One clear line when an http(s) tracking server does not answer: MLflow's own retries take
    minutes, which suits a short outage during a run, not a wrong address at the start."""
    if not uri.startswith(("http://", "https://")):
        return
    for attempt in range(attempts):
        time.sleep(attempt)
        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5)  # any answer, even 401, is a server
            return
        except requests.RequestException as error:
            failure = error
    raise ColorizeError(f"tracking.uri={hide_password(uri)}: no MLflow server answers ({type(failure).__name__})")


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    """Tag a run, ended or not, in the current tracking store."""
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def end_lost_run(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Close the run of a process that died (SIGKILL, a lost machine): KILLED, never left RUNNING."""
    client = mlflow.MlflowClient(uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if client.get_run(run_id).info.status == RunStatus.to_string(RunStatus.RUNNING):
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))


class ParentRun:
    """A sweep's parent run, driven through the client: it stays open while trials, in this process
    or others, start their own runs under it."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.client = mlflow.MlflowClient(uri)
        self.run_id = run_id

    @classmethod
    def create(cls, uri: str, experiment: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> "ParentRun":
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        try:
            client = mlflow.MlflowClient(uri)
            run = client.create_run(_experiment_id(experiment, uri), run_name=run_name, tags={k: hide_password(v) for k, v in tags.items()})
        except MlflowException as error:
            raise ColorizeError(f"tracking.uri={hide_password(uri)}: {hide_password(first_line(error))}") from None
        parent = cls(uri, run.info.run_id)
        for key, value in params.items():
            client.log_param(parent.run_id, key, hide_password(str(value))[:MAX_PARAM_CHARS])
        return parent

    def reopen(self) -> Optional[str]:
        """Mark RUNNING again for a resumed sweep; the status it had, or None when the run is gone
        (another store, deleted)."""
        try:
            run = self.client.get_run(self.run_id)
        except MlflowException:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        return run.info.status

    def summary(self, metrics: Mapping[str, float], tags: Mapping[str, str], figures: Mapping[str, Figure], texts: Mapping[str, str]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, hide_password(value))
        for artifact_file, figure in figures.items():
            self.client.log_figure(self.run_id, figure, artifact_file)
            plt.close(figure)
        for artifact_file, text in texts.items():
            self.client.log_text(self.run_id, hide_password(text), artifact_file)

    def end(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED; ending an ended run again only sets its status."""
        self.client.set_terminated(self.run_id, status)
