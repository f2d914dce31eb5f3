"""Resources: the project (its params, folders and DVC store) and the MLflow tracking server."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from ml_assets.lib.config import Params, load_params
from ml_assets.lib.dvc_store import DvcStore
from ml_assets.lib.settings import Locations, check_endpoint, resolve_locations

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ml_assets.lib.alerts import Alert


class ProjectResource(dg.ConfigurableResource):
    """The project checkout: `params.yaml`, the data folders and the DVC store.

    Unset fields fall back to `ML_ASSETS_ROOT`, `ML_ASSETS_DVC_REMOTE` and `ML_ASSETS_DATA_DOCS_URL`,
    then to repo-local defaults, so `dagster dev` from the repository root needs no configuration.
    """

    root: str | None = None
    dvc_remote: str | None = None
    data_docs_url: str | None = None

    @property
    def locations(self) -> Locations:
        """The resolved store locations."""
        return resolve_locations(os.environ, root=self.root, dvc_remote=self.dvc_remote)

    def params(self) -> Params:
        """Reads `params.yaml` afresh, so an edit applies to the next run."""
        return load_params(self.locations.root / "params.yaml")

    def path(self, relative: str) -> Path:
        """A path from `params.yaml`, made absolute against the project root."""
        return self.locations.root / relative

    def data_docs_link(self, page: str) -> str:
        """A link to a GX Data Docs page; `validation.data_docs_dir(root)` is what that URL serves."""
        from ml_assets.lib.validation import data_docs_url

        base = self.data_docs_url or os.environ.get("ML_ASSETS_DATA_DOCS_URL") or "http://127.0.0.1:3002/"
        return data_docs_url(base, page)

    def dvc(self) -> DvcStore:
        """The DVC store, initialized and pointed at the configured remote."""
        locations = self.locations
        if locations.dvc_endpoint_url:
            check_endpoint(locations.dvc_endpoint_url, variable="ML_ASSETS_DVC_ENDPOINT_URL")
        store = DvcStore(root=locations.root, remote_url=locations.dvc_remote, endpoint_url=locations.dvc_endpoint_url)
        store.ensure_ready()
        return store


class MlflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and model registry.

    `tracking_uri` falls back to `MLFLOW_TRACKING_URI`, then to a SQLite store under the project
    root. MLflow is imported only when a step uses it.
    """

    tracking_uri: str | None = None
    root: str | None = None
    ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"

    @property
    def locations(self) -> Locations:
        """The resolved store locations."""
        return resolve_locations(os.environ, root=self.root, mlflow_tracking_uri=self.tracking_uri)

    @property
    def uri(self) -> str:
        """The tracking URI in use."""
        return self.locations.mlflow_tracking_uri

    def client(self) -> "MlflowClient":
        """A client bound to the tracking URI (the registry shares it)."""
        from mlflow import MlflowClient

        uri = self.uri
        check_endpoint(uri, variable="MLFLOW_TRACKING_URI")  # a clear error instead of MLflow's retries
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use."""
        from ml_assets.lib.tracking import ensure_experiment

        return ensure_experiment(self.client(), name, artifact_root=self.locations.mlflow_artifact_root)

    def parent_run(self, context: Any, *, experiment_name: str, tags: dict[str, str] | None = None) -> str:
        """The MLflow run of this Dagster run, through dagster-mlflow's `MlFlow` tracking class.

        The first step that asks starts it (tagged `dagster_run_id`); later steps, in this process or
        another, find it by that tag and make it their active run, so each candidate logs a nested
        run under it. What dagster-mlflow's `mlflow_tracking` resource adds on top is not used: it
        is a function-style resource that imports MLflow when the code location loads, and its
        `end_mlflow_on_run_finished` hook can end the run while other steps still run
        (dagster#21872). The run ends with the Dagster run instead (`end_runs_of`, called by the
        run status sensors and by `make run`), also when a step process died.
        """
        import warnings
        from types import SimpleNamespace

        with warnings.catch_warnings():  # dagster-mlflow marks its class beta; the warning says nothing to act on
            warnings.simplefilter("ignore")
            import mlflow
            from dagster_mlflow.resources import MlFlow

        self.experiment_id(experiment_name)  # created with this store's artifact root, before MlFlow looks it up
        config = {
            "experiment_name": experiment_name,
            "mlflow_tracking_uri": self.uri,
            "extra_tags": {"dagster_run_url": self.dagster_run_url(context.run_id), **(tags or {})},
        }
        MlFlow(SimpleNamespace(log=context.log, dagster_run=context.run, run_id=context.run_id, resource_config=config))
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError(
                f"dagster-mlflow started no MLflow run for Dagster run {context.run_id} at {self.uri}: "
                "check that the tracking server answers (`make mlflow-ui`) and rerun the step"
            )
        return active.info.run_id

    def end_runs(self, dagster_run_id: str, *, experiment_name: str, status: str) -> list[str]:
        """Ends the MLflow runs of a Dagster run that are still RUNNING (see `parent_run`)."""
        from ml_assets.lib.tracking import end_runs_of

        return end_runs_of(
            self.client(), self.experiment_id(experiment_name), dagster_run_id=dagster_run_id, status=status
        )

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """A link to a run in the MLflow UI (`make mlflow-ui` serves it locally)."""
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def dagster_run_url(self, run_id: str) -> str:
        """A link from MLflow back to the Dagster run that trained or registered a model."""
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}"

    def version_url(self, model_name: str, version: str) -> str:
        """A link to a registered model version in the MLflow UI."""
        return f"{self.ui_url.rstrip('/')}/#/models/{model_name}/versions/{version}"


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: always the run's log (so the UI shows them), and a webhook when configured.

    `webhook_url` falls back to `ML_ASSETS_ALERT_WEBHOOK`; Slack-compatible JSON (`{"text": ...}`).
    """

    webhook_url: str | None = None

    def url(self) -> str | None:
        """The webhook in use, if any."""
        return self.webhook_url or os.environ.get("ML_ASSETS_ALERT_WEBHOOK") or None

    def send(self, context: Any, alert: "Alert") -> None:
        """Logs the alert as an error and posts it to the webhook; a webhook failure is logged, not raised."""
        from ml_assets.lib.alerts import post_webhook

        context.log.error(alert.text())
        url = self.url()
        if url:
            try:
                post_webhook(url, alert)
            except OSError as error:
                context.log.warning(f"alert webhook `{url}` failed: {error}; the alert is in this log")
