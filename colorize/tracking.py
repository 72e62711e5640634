"""MLflow tracking: the only module that imports mlflow."""

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import requests  # mlflow's own HTTP client
import torch
from matplotlib.figure import Figure
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from colorize.errors import ColorizeError, first_line
from colorize.secrets import mask

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value
# Logging the model copies its files through MLflow's downloader, whose progress bars say nothing to a user.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a store that is a file, by default
SERVED, PHOTO = Path(__file__).with_name("served.py"), Path(__file__).with_name("photo.py")  # the logged model's code
# What the logged model answers: colourised uint8 RGB, one image (H, W, 3) or a batch (N, H, W, 3). Its
# input has no schema: it takes uint8 gray or RGB, one or a batch (colorize/served.py), which no one
# MLflow tensor shape describes, and it says itself in one line what it expected.
SIGNATURE = ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]))
# MLflow 3 records an experiment's kind in this tag. The 3.17 UI does not read it to pick its GenAI or
# Model training pages (the address's workflowType, else the browser's sidebar switch): README.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def connect(uri: str) -> str:
    """Point MLflow at `uri`, and return the address to use from then on. A user and password in an
    http(s) URL go to MLflow's own variables for them (MLFLOW_TRACKING_USERNAME, _PASSWORD, sent as
    basic auth), so the address MLflow prints ("View run ... at") and keeps holds neither."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.password is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username or "")
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
        uri = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        # A new store's tables are made by whichever process first opens it: runs started together on
        # a new store would all migrate it at once (alembic fails all but one), so they take turns.
        with open(database.with_name(database.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    return uri


def run_page(uri: str, run_id: str) -> tuple[str, str, str]:
    """A run's name, its page in the MLflow UI (on its training runs' pages: workflowType), and the
    command that serves that UI for a store that is a file (empty for a tracking server)."""
    run = mlflow.MlflowClient(connect(uri)).get_run(run_id)
    base, serve = (
        (uri.rstrip("/"), "")
        if uri.startswith(("http://", "https://"))
        else (UI, f"mlflow ui --backend-store-uri {uri} --port {UI.rsplit(':', 1)[1]}")
    )
    page = f"{mask(base)}/#/experiments/{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning"
    return run.info.run_name, page, serve


def git_commit(cwd: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _experiment_id(name: str, uri: str) -> str:
    """The experiment's id, created when missing; either way marked as one of model training."""
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            # Keep artifacts beside the database, not in ./mlruns of whatever directory the run started in.
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
        try:
            mlflow.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # another process created it first
            pass
        found = mlflow.get_experiment_by_name(name)
    key, kind = EXPERIMENT_KIND
    if found.tags.get(key) != kind:  # created before this tag was set, or by another tool
        mlflow.MlflowClient().set_experiment_tag(found.experiment_id, key, kind)
    return found.experiment_id


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

    def image(self, figure: Figure, key: str, step: int) -> None:
        """One step of a stepped image: the run page's slider walks the steps of `key`."""
        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
        plt.close(figure)
        mlflow.log_image(pixels, key=key, step=step)

    def dataset(self, name: str, source: str, digest: str, profile: Mapping[str, Any], context: str) -> None:
        """A dataset input of the run (the run table's Dataset column); `source` is a folder path or
        the name of a built-in set."""
        if Path(source).is_dir():
            with warnings.catch_warnings():
                # MLflow registers one LocalArtifactDatasetSource for each of the schemes "" and "file",
                # so a folder's file:// URI matches two equal classes and it warns; either serves.
                warnings.filterwarnings(
                    "ignore", message="The specified dataset source can be interpreted in multiple ways"
                )
                where = resolve_dataset_source(Path(source).resolve().as_uri())
        else:
            where = CodeDatasetSource({"data": source})
        mlflow.log_input(_ImageSet(where, name, digest, dict(profile)), context=context)

    def has_datasets(self) -> bool:
        return bool(mlflow.get_run(self.run_id).inputs.dataset_inputs)

    def artifact(self, path: Path, folder: Optional[str] = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=folder)

    def text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file)

    def model(
        self, program: torch.export.ExportedProgram, settings: Mapping[str, Any], register: Optional[str] = None
    ) -> None:
        """Log the photo colouring as an MLflow pyfunc model (colorize/served.py, with colorize/photo.py
        as its code and the exported program), and as a new version of registered model `register`
        when given. It needs torch, numpy and mlflow where it is loaded, never colorize ("colorize" on
        the public index is another project)."""
        # MLflow asks for type hints on predict (served.py says why there are none) under a warnings
        # filter of its own, which no filter here can override: caught, and the other warnings shown.
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
            torch.export.save(program, Path(folder) / "photo.pt2")
            (Path(folder) / "settings.json").write_text(json.dumps(dict(settings)))
            # MLflow runs the model's code to check it as it logs it, with its code_paths not yet on
            # the path: served.py's `import photo` must resolve here as it will where it is loaded.
            sys.path.insert(0, str(PHOTO.parent))
            try:
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(SERVED),
                    code_paths=[str(PHOTO)],
                    artifacts={
                        "program": str(Path(folder) / "photo.pt2"),
                        "settings": str(Path(folder) / "settings.json"),
                    },
                    signature=SIGNATURE,
                    input_example=np.zeros(
                        (1, 8, 12, 3), np.uint8
                    ),  # a batch of one tiny black photo (checked: it runs)
                    # Given, not inferred: inferring re-imports the model in a subprocess (seconds).
                    pip_requirements=[
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"mlflow=={mlflow.__version__}",
                        f"numpy=={np.__version__}",
                    ],
                    registered_model_name=register,
                )
            except MlflowException as error:
                raise ColorizeError(
                    f"the model could not be logged{f' as registered model {register}' if register else ''}: {first_line(error)}"
                ) from None
            finally:
                sys.path.remove(str(PHOTO.parent))
        for warning in caught:
            if "Add type hints to the `predict` method" not in str(warning.message):
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


class _ImageSet(MetaDataset):
    """A dataset known by its digest and profile (how many images, their size), not its rows."""

    def __init__(self, source: Any, name: str, digest: str, profile: dict[str, Any]) -> None:
        self._profile = profile
        super().__init__(source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


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

    def image(self, figure: Figure, key: str, step: int) -> None:
        plt.close(figure)

    def model(
        self, program: torch.export.ExportedProgram, settings: Mapping[str, Any], register: Optional[str] = None
    ) -> None:
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
    suffix: bool = False,
    system_metrics: bool = False,
) -> Iterator[Tracker]:
    """An MLflow run that ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C / SIGTERM.
    `suffix`: a new run's name gets its id's first 6 characters, so names stay unique; a resumed
    run keeps its name. `system_metrics`: MLflow's CPU, memory (and GPU) metrics."""
    check_server(uri)
    uri = connect(uri)
    try:
        experiment_id = _experiment_id(experiment, uri)
        if resume_run_id and not _run_exists(resume_run_id):
            resume_run_id = None
        if system_metrics:
            _check_system_metrics()
        run = mlflow.start_run(
            run_id=resume_run_id,
            experiment_id=experiment_id,
            run_name=run_name,
            parent_run_id=parent_run_id,
            log_system_metrics=system_metrics or None,
        )
        if suffix and resume_run_id is None:
            mlflow.MlflowClient().update_run(run.info.run_id, name=f"{run_name}-{run.info.run_id[:6]}")
    except MlflowException as error:
        raise ColorizeError(f"tracking.uri={mask(uri)}: {mask(first_line(error))}") from None
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        if resume_run_id is None:
            mlflow.log_params({k: mask(str(v))[:MAX_PARAM_CHARS] for k, v in params.items()})
        mlflow.set_tags({k: mask(str(v)) for k, v in tags.items()})
        yield Tracker(run.info.run_id)
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        mlflow.end_run(status)


def _check_system_metrics() -> None:
    try:
        import psutil  # noqa: F401  (MLflow's CPU and memory monitor)
    except ImportError:
        raise ColorizeError('tracking.system_metrics=true needs psutil: pip install -e ".[system-metrics]"') from None


def download_checkpoint(uri: str, tracking_uri: str, artifact: str = "checkpoints/best.pt") -> Path:
    """The checkpoint behind runs:/<run_id>/..., models:/<name>/<version> or models:/<name>@<alias>:
    the one its run logged, which holds the weights and the config (so the model's class and target
    space are known), which the logged model alone lacks."""
    tracking_uri = connect(tracking_uri)
    try:
        run_id = _model_run(uri) if uri.startswith("models:/") else uri.removeprefix("runs:/").split("/")[0]
    except MlflowException as error:
        raise ColorizeError(f"checkpoint={uri}: not found in {mask(tracking_uri)} ({first_line(error)})") from None
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact))
    except (MlflowException, OSError) as error:
        raise ColorizeError(
            f"checkpoint={uri}: cannot fetch {artifact} of run {run_id} from {mask(tracking_uri)} ({first_line(error)})"
        ) from None


def _model_run(uri: str) -> str:
    """The run that logged the model version behind a models:/ URI."""
    name, _, version = uri.removeprefix("models:/").partition("/")
    client = mlflow.MlflowClient()
    if "@" in name:
        name, alias = name.split("@", 1)
        found = client.get_model_version_by_alias(name, alias)
    elif version:
        found = client.get_model_version(name, version.split("/")[0])
    else:
        raise MlflowException("give models:/<name>/<version> or models:/<name>@<alias>")
    if not found.run_id:
        raise MlflowException(f"version {found.version} of {name} was not logged by a run")
    return found.run_id


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
    raise ColorizeError(f"tracking.uri={mask(uri)}: no MLflow server answers ({type(failure).__name__})")
