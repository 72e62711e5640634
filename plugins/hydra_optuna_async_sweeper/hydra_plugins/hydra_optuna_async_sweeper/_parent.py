"""hydra.sweeper.mlflow: one MLflow parent run per study (the `mlflow` extra). The worker that creates
the study creates the run and keeps its id in the study; every worker and every rerun attaches to it;
jobs find it through trial.parent_run_id. It is driven through MlflowClient, so it stays open while
trials in this process or others start their own runs under it, and any worker can close it.

mlflow is imported only here, and only for sweeps that set hydra.sweeper.mlflow.tracking_uri."""

import fcntl
import os
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError, mask, one_line

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise SweeperError(
            "hydra.sweeper.mlflow.tracking_uri needs mlflow: pip install 'hydra-optuna-async-sweeper[mlflow]'"
        ) from None
    return mlflow


def connect(uri: str) -> str:
    """The address to give MLflow for `uri`: a user and password of an http(s) URL go to MLflow's own
    variables for them (sent as basic auth), so the address MLflow prints and keeps holds neither. A
    new SQLite store is opened under a lock: workers started together would all make its tables."""
    mlflow = _mlflow()
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.password is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username or "")
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
        uri = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    mlflow.set_tracking_uri(uri)  # for the registry's calls, which take no client
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(database.with_name(database.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    return uri


def check_server(uri: str, attempts: int = 3) -> None:
    """One clear line when an http(s) tracking server does not answer: MLflow's own retries take
    minutes, which suits a short outage during a sweep, not a wrong address at its start."""
    if not uri.startswith(("http://", "https://")):
        return
    import time

    import requests  # mlflow's own HTTP client

    for attempt in range(attempts):
        time.sleep(attempt)
        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5)  # any answer, even 401, is a server
            return
        except requests.RequestException as error:
            failure = error
    raise SweeperError(
        f"hydra.sweeper.mlflow.tracking_uri={mask(uri)}: no MLflow server answers ({type(failure).__name__})"
    )


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The experiment's id, created when missing, with its artifacts beside a SQLite store's database
    (not in ./mlruns of whatever directory the sweep started in)."""
    mlflow = _mlflow()
    found = client.get_experiment_by_name(name)
    if found is None:
        location = (
            (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
            if uri.startswith("sqlite:///")
            else None
        )
        try:
            client.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # another worker created it first
            pass
        found = client.get_experiment_by_name(name)
    return found.experiment_id


def find(uri: str, experiment: str, study: str) -> Optional[str]:
    """The id of a study's parent run (tagged with its study, no parent of its own), if one exists."""
    client = _mlflow().MlflowClient(connect(uri))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`optuna.study` = '{study}'", order_by=["attributes.start_time ASC"]
    )
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents[0].info.run_id if parents else None


def end_lost_run(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Close a lost trial's run (its process died: SIGKILL, a lost machine): KILLED, never left RUNNING."""
    client = _mlflow().MlflowClient(connect(uri))
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "KILLED")


class ParentRun:
    def __init__(self, uri: str, run_id: str) -> None:
        self.client = _mlflow().MlflowClient(connect(uri))
        self.run_id = run_id

    @classmethod
    def create(
        cls, uri: str, experiment: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> "ParentRun":
        mlflow = _mlflow()
        uri = connect(uri)
        try:
            client = mlflow.MlflowClient(uri)
            run = client.create_run(
                experiment_id(client, experiment, uri), run_name=run_name, tags={k: mask(v) for k, v in tags.items()}
            )
        except mlflow.exceptions.MlflowException as error:
            raise SweeperError(f"hydra.sweeper.mlflow.tracking_uri={mask(uri)}: {mask(one_line(error))}") from None
        parent = cls(uri, run.info.run_id)
        for key, value in params.items():
            client.log_param(parent.run_id, key, mask(str(value))[:MAX_PARAM_CHARS])
        return parent

    def reopen(self) -> Optional[str]:
        """Mark RUNNING again for a resumed sweep; the status it had, or None when the run is gone
        (another store, deleted)."""
        try:
            run = self.client.get_run(self.run_id)
        except _mlflow().exceptions.MlflowException:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        if run.info.status != "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        return run.info.status

    def tag_trial_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        """A trial's own run, ended or not: its state and reason, as the sweep ended the trial."""
        for key, value in tags.items():
            self.client.set_tag(run_id, key, mask(value))

    def summary(
        self,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        figures: Mapping[str, Any],
        texts: Mapping[str, str],
        children: Optional[Mapping[str, Mapping[str, str]]] = None,
    ) -> None:
        """The sweep's results on the parent run; `children`: tags for child runs, by run id."""
        import matplotlib.pyplot as plt

        for run_id, child_tags in (children or {}).items():
            self.tag_trial_run(run_id, child_tags)
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, mask(value))
        for artifact_file, figure in figures.items():
            self.client.log_figure(self.run_id, figure, artifact_file)
            plt.close(figure)
        for artifact_file, text in texts.items():
            self.client.log_text(self.run_id, mask(text), artifact_file)

    def register_best(self, run_id: str, name: str, alias: str) -> Optional[str]:
        """The model that run `run_id` logged as the next version of registered model `name`, `alias`
        pointed at it; the version, or None when the run logged no model."""
        mlflow = _mlflow()
        run = self.client.get_run(run_id)
        logged = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
        )
        if not logged:
            return None
        version = mlflow.register_model(logged[0].model_uri, name).version
        self.client.set_registered_model_alias(name, alias, version)
        return str(version)

    def end(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED; ending an ended run again only sets its status."""
        self.client.set_terminated(self.run_id, status)
