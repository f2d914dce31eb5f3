"""Registry: registration in MLflow and promotion to `champion`.

A model that passed every gate becomes a registered version (alias `challenger`), is smoke-tested
from the registry, and only then takes the `champion` alias.
"""

from typing import Any

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS, OWNERS, RETRY
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib
from ml_assets.lib.evaluation import CandidateEvaluation
from ml_assets.lib.training import CandidateModel


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["registered_model"],
    retry_policy=RETRY,
)
def registered_model(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    trained_model: CandidateModel,
    dataset_split: features_lib.TrainingData,
    model_evaluation: CandidateEvaluation,
) -> dg.Output[str]:
    """The trained model as a version in the MLflow Model Registry, tagged with its lineage and aliased `challenger`.

    Registering the same training setup again (same fingerprint) returns the existing version.
    """
    from ml_assets.lib import tracking
    from ml_assets.lib.lineage import git_commit

    params = project.params()
    client = mlflow.client()
    name = params.registry.model_name
    existing = tracking.find_version(client, name, fingerprint=trained_model.fingerprint)
    if existing is not None:
        version = existing
        context.log.info(f"`{name}` v{version.version} already holds fingerprint {trained_model.fingerprint}")
    else:
        version = tracking.register_version(
            client,
            model_name=name,
            model_uri=trained_model.model_uri,
            run_id=trained_model.run_id,
            tags={
                tracking.FINGERPRINT_TAG: trained_model.fingerprint,
                "candidate": trained_model.name,
                "dvc.snapshot_md5": dataset_split.snapshot_md5,
                "dvc.holdout_md5": dataset_split.holdout_md5,
                "git_commit": git_commit(project.locations.root),
                "dagster_run_id": context.run_id,
                "dagster_run_url": mlflow.dagster_run_url(context.run_id),
                "params_hash": params.section_hash(),
                "code_version": CODE_VERSIONS["trained_model"],
                **{f"test_{k}": f"{v:.6f}" for k, v in model_evaluation.metrics.scalars().items()},
            },
            description=f"{trained_model.name} trained on snapshot {dataset_split.snapshot_md5}",
        )
    number = str(version.version)
    client.set_registered_model_alias(name, tracking.CHALLENGER, number)
    return dg.Output(
        number,
        metadata={
            "model_name": name,
            "version": int(number),
            "newly_registered": existing is None,
            "model_version": dg.MetadataValue.url(mlflow.version_url(name, number)),
            "mlflow_run": dg.MetadataValue.url(
                mlflow.run_url(mlflow.experiment_id(params.registry.experiment_name), trained_model.run_id)
            ),
            "dvc_snapshot_md5": dataset_split.snapshot_md5,
            "dvc_holdout_md5": dataset_split.holdout_md5,
            "params_hash": params.section_hash(),
            "code_version": CODE_VERSIONS["trained_model"],
            "fingerprint": trained_model.fingerprint,
        },
    )


@dg.asset_check(
    asset=registered_model,
    blocking=True,
    additional_ins={"trained_model": dg.AssetIn("trained_model"), "dataset_split": dg.AssetIn("dataset_split")},
)
def loads_from_registry_and_matches(
    project: ProjectResource,
    mlflow: MlflowResource,
    registered_model: str,
    trained_model: CandidateModel,
    dataset_split: features_lib.TrainingData,
) -> dg.AssetCheckResult:
    """The registered version loads from the registry and predicts exactly what the trained model predicts."""
    import numpy as np

    from ml_assets.lib import tracking

    name = project.params().registry.model_name
    rows = dataset_split.split.test[list(dataset_split.spec.features)].head(200)
    loaded = tracking.load_model(mlflow.uri, f"models:/{name}/{registered_model}")
    gap = float(np.max(np.abs(loaded.predict_proba(rows) - trained_model.model.predict_proba(rows))))
    return dg.AssetCheckResult(
        passed=gap < 1e-9,
        metadata={"max_probability_gap": gap, "rows_compared": len(rows)},
        description=None
        if gap < 1e-9
        else f"`{name}` v{registered_model} predicts differently after reload (gap {gap:.2e})",
    )


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["champion_model"],
    retry_policy=RETRY,
)
def champion_model(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, registered_model: str
) -> dg.Output[str]:
    """The production model: the registry's `champion` alias, on the newest version that passed every gate."""
    from ml_assets.lib import tracking

    name = project.params().registry.model_name
    client = mlflow.client()
    before = tracking.alias_version(client, name, tracking.CHAMPION)
    previous = str(before.version) if before is not None else None
    promoted = previous != registered_model
    if promoted:
        tracking.move_alias(client, name, tracking.CHAMPION, registered_model)
        if previous is not None:
            client.set_registered_model_alias(name, tracking.PREVIOUS_CHAMPION, previous)
        context.log.info(f"`{name}@champion`: v{previous or '-'} -> v{registered_model}")
    return dg.Output(
        registered_model,
        metadata={
            "metrics_by_version": _metric_history(client, name),
            "model_name": name,
            "champion_version": int(registered_model),
            "previous_champion_version": int(previous) if previous else None,
            "promoted": promoted,
            "model_uri": f"models:/{name}@champion",
            "model_version": dg.MetadataValue.url(mlflow.version_url(name, registered_model)),
        },
    )


def _metric_history(client: Any, name: str) -> dg.MetadataValue:
    """Holdout metrics of every registered version, as a chart."""
    from ml_assets.lib import plots

    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    metrics = ("roc_auc", "f1", "accuracy")
    history = [
        {"version": f"v{v.version}", **{m: float(v.tags[f"test_{m}"]) for m in metrics if f"test_{m}" in v.tags}}
        for v in versions
    ]
    png = plots.metric_history_png(history, metrics=metrics, title=f"`{name}`: holdout metrics by version")
    return dg.MetadataValue.md(plots.as_markdown_image(png, alt="metrics by version"))
