"""Monitoring: drift of each validated batch, and the champion's live performance on it.

Each validated batch is compared with the champion's training data and, when it carries labels,
used to score the champion live (with a rollback when it fell below the minimum).
"""

from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import OWNERS, RETRY, code_version
from ml_assets.defs.ingestion import landing_batches, validated_batch
from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource
from ml_assets.lib.alerts import Alert

if TYPE_CHECKING:
    from ml_assets.lib.drift import DriftReport


def _champion_reference(project: ProjectResource, md5: str) -> pd.DataFrame:
    """The snapshot the champion was trained on, read back by its DVC md5 (cache, else remote)."""
    path = project.path("data/reference") / f"{md5}.parquet"
    if not path.is_file():
        project.dvc().materialize_md5(md5, path)
    return pd.read_parquet(path)


@dg.asset(
    partitions_def=landing_batches,
    deps=[validated_batch],
    group_name="monitoring",
    kinds={"pandas", "dvc"},
    owners=OWNERS,
    code_version=code_version("1", "drift", "data.feature_types"),
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
)
def batch_drift(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, landed_batch: pd.DataFrame
) -> dg.Output[dict[str, Any]]:
    """Per-feature drift of this batch against the champion's training data (PSI with KS or chi-square tests).

    The dataset-level rule corrects for testing many features at once and needs a minimum sample;
    see `ml_assets/lib/drift.py` and `drift:` in params.yaml.
    """
    from ml_assets.lib import plots, tracking
    from ml_assets.lib.drift import compute_drift
    from ml_assets.lib.features import infer_feature_spec

    params = project.params()
    champion = tracking.alias_version(mlflow.client(), params.registry.model_name, tracking.CHAMPION)
    if champion is None:
        context.log.info(f"batch `{context.partition_key}`: no champion yet, nothing to drift from")
        return dg.Output(
            {"status": "no_champion", "drifted": False}, metadata={"status": "no_champion", "drifted": False}
        )
    reference_md5 = champion.tags["dvc.snapshot_md5"]
    reference = _champion_reference(project, reference_md5)
    spec = infer_feature_spec(
        reference, target=params.data.target, id_columns=params.data.id_columns, feature_types=params.data.feature_types
    )
    drift = params.drift
    report = compute_drift(
        reference,
        landed_batch,
        numeric=spec.numeric,
        categorical=spec.categorical,
        alpha=drift.alpha,
        psi_threshold=drift.psi_threshold,
        min_samples=drift.min_samples,
        correction=drift.correction,
        bins=drift.bins,
    )
    context.log.info(f"batch `{context.partition_key}`: {report.summary()}")
    records = report.to_records()
    metadata: dict[str, Any] = {
        "status": report.status,
        "drifted": report.drifted,
        "summary": report.summary(),
        "drifted_features": ", ".join(report.drifted_features),
        "champion_version": int(champion.version),
        "reference_dvc_md5": reference_md5,
        "report": dg.MetadataValue.json(report.to_dict()),
    }
    if records:
        metadata["features"] = _feature_table(report)
        metadata["chart"] = dg.MetadataValue.md(
            plots.as_markdown_image(plots.drift_png(records, psi_threshold=drift.psi_threshold), alt="drift")
        )
    return dg.Output(report.to_dict(), metadata=metadata)


def _feature_table(report: "DriftReport") -> dg.TableMetadataValue:
    """One row per feature; p-values as the text the summary prints ("9.1e-33", not a rounded 0)."""
    from ml_assets.lib.drift import format_p_value

    columns = {"feature": "string", "psi": "float", "p_value": "string", "adj_p_value": "string", "drifted": "bool"}
    rows = [
        dg.TableRecord(
            {"feature": f.feature, "psi": round(f.psi, 3), "p_value": format_p_value(f.p_value)}
            | {"adj_p_value": format_p_value(f.adjusted_p_value), "drifted": f.drifted}
        )
        for f in report.features
    ]
    return dg.MetadataValue.table(rows, schema=dg.TableSchema([dg.TableColumn(c, t) for c, t in columns.items()]))


@dg.asset(
    partitions_def=landing_batches,
    deps=[validated_batch],
    group_name="monitoring",
    kinds={"sklearn", "mlflow"},
    owners=OWNERS,
    code_version=code_version("1", "retrain.performance_metric", "retrain.min_live_score"),
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
)
def live_performance(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    alerts: AlertResource,
    landed_batch: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion's score on this batch's labels, with an alert and a rollback when it falls below the minimum.

    The rollback moves `champion` back to `previous_champion` only when that version scores
    better on the same batch.
    """
    from ml_assets.lib import tracking
    from ml_assets.lib.evaluation import score_model
    from ml_assets.lib.retrain import evaluate_live_performance

    params = project.params()
    name, target, metric = params.registry.model_name, params.data.target, params.retrain.performance_metric
    client = mlflow.client()
    champion = tracking.alias_version(client, name, tracking.CHAMPION)
    labels = landed_batch[target].dropna() if target in landed_batch else pd.Series(dtype=float)
    if champion is None or labels.nunique() < 2:
        status = "no_champion" if champion is None else "unlabelled"
        return dg.Output({"status": status, "degraded": False}, metadata={"status": status, "degraded": False})
    rows = landed_batch.loc[labels.index]
    features = [c for c in rows.columns if c != target]

    def score(version: Any) -> float:
        model = tracking.load_model(mlflow.uri, f"models:/{name}/{version.version}")
        return score_model(model, rows, features=features, target=target).get(metric)

    previous = tracking.alias_version(client, name, tracking.PREVIOUS_CHAMPION)
    check = evaluate_live_performance(
        metric=metric,
        champion_score=score(champion),
        threshold=params.retrain.min_live_score,
        previous_score=score(previous) if previous is not None else None,
    )
    rolled_back_to = None
    if check.degraded:
        if check.rollback and previous is not None:
            client.set_registered_model_alias(name, tracking.CHAMPION, str(previous.version))
            client.delete_registered_model_alias(name, tracking.PREVIOUS_CHAMPION)
            client.set_model_version_tag(
                name, str(champion.version), "ml_assets.rolled_back", f"batch {context.partition_key}: {check.detail}"
            )
            rolled_back_to = str(previous.version)
        alerts.send(
            context,
            Alert(
                title=f"`{name}` v{champion.version} degraded on batch `{context.partition_key}`",
                detail=check.detail
                + (f"; `champion` moved back to v{rolled_back_to}" if rolled_back_to else "; champion kept")
                + "; a retrain follows (reason: performance)",
                context={"batch": context.partition_key, "run_id": context.run_id},
            ),
        )
    result = {
        "status": "degraded" if check.degraded else "ok",
        "degraded": check.degraded,
        "metric": metric,
        "champion_version": int(champion.version),
        "champion_score": check.champion_score,
        "previous_version": int(previous.version) if previous is not None else None,
        "previous_score": check.previous_score,
        "rolled_back_to": int(rolled_back_to) if rolled_back_to else None,
        "detail": check.detail,
    }
    return dg.Output(result, metadata={k: v for k, v in result.items() if v is not None})
