"""MLflow: one MLflow run per training run, one experiment per sweep; resumed runs continue their MLflow run."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from regbench.track import RunInfo, scalars
from regbench import run_dir

STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


def store_uri(uri: str) -> str:
    """A relative SQLite path made absolute (from the working directory) and its folder created."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        db = Path.cwd() / uri[len(prefix):]
        db.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(db)
    if uri.startswith(prefix + "/"):
        Path(uri[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def resumed_uri(tracking_uri: str, saved: dict[str, Any]) -> str:
    """The store a resumed run continues in: the absolute URI its first attempt saved when the configured URI is the
    one it was given then (a relative SQLite path means the store of the first attempt's working directory)."""
    if saved.get("configured_uri") == tracking_uri and saved.get("tracking_uri"):
        return str(saved["tracking_uri"])
    return store_uri(tracking_uri)


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, values as strings (lists as JSON)."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else str(node)}


class MLflowTracker:
    """Params (the flattened config and group choices), metrics at every evaluation, status tags, artifacts."""

    def __init__(self, run: RunInfo, tracking_uri: str, experiment_name: str | None, request_retries: int,
                 request_timeout_s: float) -> None:
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(request_retries)
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(request_timeout_s)
        from mlflow.tracking import MlflowClient

        for name in ("alembic", "mlflow"):  # schema migrations and store set-up log at INFO on every job
            logging.getLogger(name).setLevel(logging.WARNING)
        # each retry of a request to a server that went away is a warning; the tracker's own warning says it once
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

        saved = run_dir.read_json(run.folder / run_dir.MLFLOW_RUN) if run.resume else None
        self.run, self.uri = run, resumed_uri(tracking_uri, saved) if saved else store_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        if saved and saved.get("tracking_uri") == self.uri:
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "val/acc")
            self.logged_step = max((m.step for m in history), default=-1)
            return
        name = experiment_name or run.sweep_dir or run.choices.get("experiment") or "regbench"
        experiment_id = self._experiment(str(name))
        tags = dict(status="running", config_hash=run.config_hash, run_dir=str(run.folder),
                    sweep_dir=run.sweep_dir or "", job_num="" if run.job_num is None else str(run.job_num))
        self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        run_dir.write_json(run.folder / run_dir.MLFLOW_RUN, dict(tracking_uri=self.uri, configured_uri=tracking_uri,
                                                       experiment_id=experiment_id, run_id=self.run_id))
        from mlflow.entities import Param

        config = {k: v for k, v in run.config.items() if k != "logger"}
        params = {**flatten(config), **{f"choices.{k}": str(v) for k, v in run.choices.items() if k != "logger"}}
        self.client.log_batch(self.run_id, params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in params.items()])
        self.logged_step = -1

    def _experiment(self, name: str) -> str:
        """The id of the experiment `name`, created if needed (jobs of a parallel sweep may race to create it)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            location = None
            if self.uri.startswith("sqlite:///"):  # artifacts beside the database, not in the working directory
                location = (Path(self.uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException:
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        return found.experiment_id

    def log(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, row["step"]) for key, value in scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, summary: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        now, step = int(time.time() * 1000), summary.get("steps") or 0
        final = [Metric(k, float(summary[k]), now, step) for k in ("best_val_acc", "test_acc")
                 if isinstance(summary.get(k), (int, float))]
        tags = [RunTag("status", summary["status"])] + ([RunTag("error", summary["error"][:5000])]
                                                        if summary.get("error") else [])
        try:
            self.client.log_batch(self.run_id, metrics=final, tags=tags)
        finally:  # before the uploads: a failed one must not leave the MLflow run RUNNING
            self.client.set_terminated(self.run_id, STATUS.get(summary["status"], "FAILED"))
        folder = self.run.folder
        for path, artifact_dir in ((folder / run_dir.SUMMARY, None), (folder / run_dir.CURVES, None),
                                   (folder / run_dir.HYDRA_DIR / run_dir.CONFIG, "config")):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_dir)
