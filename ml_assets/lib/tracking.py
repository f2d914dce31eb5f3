"""MLflow helpers: experiments, candidate runs, the model registry and its aliases.

Every function takes an explicit `MlflowClient` or tracking URI, never the process-global active
run, so steps running in parallel processes cannot write into each other's runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
FINGERPRINT_TAG = "ml_assets.fingerprint"


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to an MLflow run."""

    run_id: str
    model_uri: str
    reused: bool


def ensure_experiment(client: MlflowClient, name: str, *, artifact_root: str | None) -> str:
    """Returns the experiment id of `name`, creating it (with `artifact_root`) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_run(client: MlflowClient, experiment_id: str, *, tags: Mapping[str, str]) -> str | None:
    """Returns the newest FINISHED run carrying all `tags`, or None."""
    clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"]
    runs = client.search_runs(
        [experiment_id], " and ".join(clauses), max_results=1, order_by=["attributes.start_time DESC"]
    )
    return runs[0].info.run_id if runs else None


def pip_requirements() -> list[str]:
    """The exact versions this environment would need to load a logged scikit-learn model.

    Passing them to `log_model` skips MLflow's inference of requirements, which costs seconds.
    """
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "cloudpickle")
    ]


def log_sklearn_model(
    *,
    tracking_uri: str,
    experiment_id: str,
    run_name: str,
    model: Any,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    input_example: pd.DataFrame,
    params_document: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> LoggedModel:
    """Logs one trained model as a new MLflow run with params, metrics, signature and input example.

    Args:
        tracking_uri: The MLflow tracking URI.
        experiment_id: The experiment to log into.
        run_name: Human-readable run name.
        model: A fitted scikit-learn estimator or pipeline.
        params: Hyper-parameters and settings to record.
        metrics: Validation metrics.
        tags: Tags, lineage included (fingerprint, DVC md5, Dagster run id, ...).
        input_example: A few raw feature rows; the signature is inferred from them.
        params_document: The whole `params.yaml` in force, saved as the run's `params.json`
            artifact so the model can be reproduced.
        parent_run_id: The MLflow run of the Dagster run; the candidate becomes its nested run.

    Returns:
        The run id and the model URI.
    """
    import mlflow
    import mlflow.sklearn as mlflow_sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    # Integer columns become doubles in the signature: a missing value at serving time is a float NaN.
    example = input_example.astype({c: "float64" for c in input_example.select_dtypes("integer").columns})
    signature = infer_signature(example, model.predict_proba(example))
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags=dict(tags),
        nested=parent_run_id is not None,
        parent_run_id=parent_run_id,
    ) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(dict(metrics))
        if params_document is not None:
            mlflow.log_dict(dict(params_document), "params.json")
        info = mlflow_sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            serialization_format="cloudpickle",
            pyfunc_predict_fn="predict_proba",
        )
        mlflow.set_tag("model_uri", info.model_uri)
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri, reused=False)


def load_model(tracking_uri: str, model_uri: str) -> Any:
    """Loads a scikit-learn model from MLflow (`runs:/...`, `models:/name@alias`, `models:/m-...`)."""
    import mlflow
    import mlflow.sklearn as mlflow_sklearn

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow_sklearn.load_model(model_uri)


def log_evaluation(
    tracking_uri: str,
    *,
    run_id: str,
    model_uri: str,
    metrics: Mapping[str, float],
    holdout: pd.DataFrame,
    holdout_md5: str,
    target: str,
) -> None:
    """Logs holdout metrics on the candidate's run, linked to its LoggedModel and to the holdout dataset.

    The MLflow UI then shows them on the model's page, per dataset, and the run lists the holdout
    (named by its DVC md5, which is its digest) as an evaluation input.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    mlflow.set_tracking_uri(tracking_uri)
    dataset = from_pandas(holdout, targets=target, name="holdout", digest=holdout_md5[:36])
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    mlflow.log_metrics(dict(metrics), run_id=run_id, model_id=model_id, dataset=dataset)


def end_runs_of(client: MlflowClient, experiment_id: str, *, dagster_run_id: str, status: str) -> list[str]:
    """Ends every MLflow run of a Dagster run still RUNNING (its parent run, a killed step's nested run).

    Args:
        client: The tracking client.
        experiment_id: The experiment.
        dagster_run_id: The Dagster run.
        status: `FINISHED`, `FAILED` or `KILLED`.

    Returns:
        The runs ended.
    """
    runs = client.search_runs(
        [experiment_id], f"tags.dagster_run_id = '{dagster_run_id}' and attributes.status = 'RUNNING'"
    )
    for run in runs:
        client.set_terminated(run.info.run_id, status=status)
    return [run.info.run_id for run in runs]


class RegistryUnavailable(RuntimeError):
    """The registry could not answer (server down, HTTP 5xx after MLflow's own retries, bad store).

    Never read as "not found": a registry that cannot be asked must not look like one without a
    champion, or a weaker model would be promoted as if it were the first.
    """


def _unavailable(client: MlflowClient, what: str, error: Exception) -> RegistryUnavailable:
    return RegistryUnavailable(
        f"the MLflow registry at `{client.tracking_uri}` could not {what} ({type(error).__name__}: {error}); "
        "nothing was changed. Check that the server answers (MLFLOW_TRACKING_URI) and run again"
    )


def read_aliases(client: MlflowClient, model_name: str) -> dict[str, str]:
    """Returns alias -> version of `model_name`; empty only when the registered model does not exist.

    MLflow's HTTP client already retries transient failures (HTTP 429/5xx) with backoff
    (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`); whatever still fails raises `RegistryUnavailable`.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise _unavailable(client, f"read the aliases of `{model_name}`", error) from error
    except Exception as error:  # connection refused, DNS, a corrupt store: could not ask
        raise _unavailable(client, f"read the aliases of `{model_name}`", error) from error
    return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}


def alias_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """Returns the version holding `alias`, None when the model or alias does not exist.

    Raises:
        RegistryUnavailable: The registry could not be asked.
    """
    version = read_aliases(client, model_name).get(alias)
    if version is None:
        return None
    try:
        return client.get_model_version(model_name, version)
    except Exception as error:
        raise _unavailable(client, f"read `{model_name}` v{version}", error) from error


@dataclass(frozen=True)
class LoadedChampion:
    """The current champion as the gates need it.

    Attributes:
        version: Its version; None when there is no champion.
        model: The loaded model; None when there is none or it failed to load.
        blocker: Why it failed to load (a reason not to promote anything automatically).
    """

    version: str | None
    model: Any = None
    blocker: str | None = None


def load_champion(client: MlflowClient, tracking_uri: str, model_name: str) -> LoadedChampion:
    """Resolves `champion` once and loads that version by number (the alias may move meanwhile).

    Raises:
        RegistryUnavailable: The registry could not say whether there is a champion.
    """
    version = read_aliases(client, model_name).get(CHAMPION)
    if version is None:
        return LoadedChampion(None)
    try:
        return LoadedChampion(version, model=load_model(tracking_uri, f"models:/{model_name}/{version}"))
    except Exception as error:
        return LoadedChampion(version, blocker=f"its model cannot be loaded ({type(error).__name__}: {error})")


def find_version(client: MlflowClient, model_name: str, *, fingerprint: str) -> ModelVersion | None:
    """Returns the registered version whose fingerprint tag equals `fingerprint`, or None.

    Raises:
        RegistryUnavailable: The registry could not be asked.
    """
    if not model_exists(client, model_name):
        return None
    try:
        versions = client.search_model_versions(f"name = '{model_name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'")
    except Exception as error:
        raise _unavailable(client, f"search the versions of `{model_name}`", error) from error
    return max(versions, key=lambda v: int(v.version)) if versions else None


def model_exists(client: MlflowClient, model_name: str) -> bool:
    """Whether `model_name` is registered; raises `RegistryUnavailable` when the registry cannot say."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise _unavailable(client, f"read `{model_name}`", error) from error
    return True


def register_version(
    client: MlflowClient,
    *,
    model_name: str,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, str],
    description: str,
) -> ModelVersion:
    """Registers a logged model as a new version of `model_name` with lineage tags.

    A `models:/m-...` URI (MLflow 3's logged model) is registered with its `model_id`: a tracking
    server rejects that source without it (the SQLite store does not check).
    """
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # it already exists
        client.create_registered_model(
            model_name, description="Managed by ml_assets; `champion` is the production alias."
        )
    logged_model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    return client.create_model_version(
        model_name,
        source=model_uri,
        run_id=run_id,
        tags=dict(tags),
        description=description,
        model_id=logged_model_id,
    )


@dataclass(frozen=True)
class Registration:
    """A registered version and whether this call created it."""

    version: ModelVersion
    created: bool


def register_or_reuse(
    client: MlflowClient,
    *,
    model_name: str,
    model_uri: str,
    run_id: str,
    fingerprint: str,
    tags: Mapping[str, str],
    description: str,
) -> Registration:
    """Registers a logged model with its lineage tags, or returns the version that holds `fingerprint`.

    The version and its tags are created in one registry call, so a crash never leaves a version
    without lineage; a crash right after leaves a version the next run finds by fingerprint.
    """
    existing = find_version(client, model_name, fingerprint=fingerprint)
    if existing is not None:
        return Registration(existing, created=False)
    version = register_version(
        client,
        model_name=model_name,
        model_uri=model_uri,
        run_id=run_id,
        tags={FINGERPRINT_TAG: fingerprint, **tags},
        description=description,
    )
    return Registration(version, created=True)
