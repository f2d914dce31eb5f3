"""Monitoring: drift of each validated batch, the champion's live performance on it, and the rollback rule.

Each validated batch is compared with the champion's training data and, when it carries labels,
used to score the champion live. A degraded champion is weighed against every earlier champion
by `live_rollback_job`, which the retrain sensor starts.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import EAGER_ON_UPDATES, OWNERS, RETRY, WRITER_POOL, code_version
from ml_assets.defs.ingestion import landing_batches, validated_batch
from ml_assets.defs.registry import history_metadata
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
    automation_condition=EAGER_ON_UPDATES,
    output_required=False,
)
def batch_drift(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, landed_batch: pd.DataFrame
) -> Iterator[dg.Output[dict[str, Any]]]:
    """Per-feature drift of this batch against the champion's training data (PSI with KS or chi-square tests).

    The dataset-level rule corrects for testing many features at once and needs a minimum sample;
    see `ml_assets/lib/drift.py` and `drift:` in params.yaml.
    """
    from ml_assets.lib import plots, tracking
    from ml_assets.lib.drift import compute_drift
    from ml_assets.lib.features import infer_feature_spec

    params = project.params()
    champion = tracking.alias_version(mlflow.client(), params.registry.model_name, tracking.CHAMPION)
    if champion is None:  # nothing to compare with: no materialization, no green
        context.log.info(f"batch `{context.partition_key}`: no champion yet, nothing to drift from")
        return
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
    yield dg.Output(report.to_dict(), metadata=metadata)


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
    code_version=code_version("2", "retrain.performance_metric", "retrain.min_live_score"),
    retry_policy=RETRY,
    automation_condition=EAGER_ON_UPDATES,
    output_required=False,
)
def live_performance(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    alerts: AlertResource,
    landed_batch: pd.DataFrame,
) -> Iterator[Any]:
    """The champion's score on this batch's labels against `retrain.min_live_score`; a degraded champion alerts.

    It measures and never moves the registry: the retrain sensor weighs a degraded champion, and
    the rollback decision (an earlier champion credibly better on the live labels) is taken by
    `live_rollback_job` through the one registry writer.
    """
    from ml_assets.lib import tracking
    from ml_assets.lib.retrain import evaluate_live_performance

    params = project.params()
    name, target, metric = params.registry.model_name, params.data.target, params.retrain.performance_metric
    champion = tracking.load_champion(mlflow.client(), mlflow.uri, name)
    labels = landed_batch[target].dropna() if target in landed_batch else pd.Series(dtype=float)
    if champion.version is None or labels.nunique() < 2:  # nothing to measure: no materialization, no green
        context.log.info(
            f"batch `{context.partition_key}`: live performance not measured: "
            + (f"no champion of `{name}` yet" if champion.version is None else "the batch has no labels (two classes)")
        )
        return
    if champion.model is None:
        raise dg.Failure(f"champion v{champion.version} of `{name}` cannot be loaded: {champion.blocker}")
    rows = landed_batch.loc[labels.index]
    check = evaluate_live_performance(
        champion.model, rows, target=target, metric=metric, threshold=params.retrain.min_live_score
    )
    if check.degraded:
        alerts.send(
            context,
            Alert(
                title=f"`{name}` v{champion.version} degraded on batch `{context.partition_key}`",
                detail=f"{check.detail}. The retrain sensor retrains (reason: performance) and weighs a rollback to "
                "an earlier champion; a person may approve a challenger, force a rollback or pin",
                context={"batch": context.partition_key, "run_id": context.run_id},
            ),
        )
    result = {
        "status": "degraded" if check.degraded else "ok",
        "degraded": check.degraded,
        "metric": metric,
        "champion_version": int(champion.version),
        "champion_score": check.champion_score,
        "labelled_rows": len(rows),
        "detail": check.detail,
    }
    yield dg.Output(result, metadata=result)


@dg.asset_check(asset=live_performance, partitions_def=landing_batches)
def champion_meets_min_live_score(live_performance: dict[str, Any]) -> dg.AssetCheckResult:
    """The champion meets `retrain.min_live_score` on this batch's labels (a failed check stays until resolved)."""
    return dg.AssetCheckResult(
        passed=not live_performance["degraded"],
        severity=dg.AssetCheckSeverity.ERROR,
        description=live_performance["detail"],
        metadata={
            "champion_version": live_performance["champion_version"],
            "score": live_performance["champion_score"],
        },
    )


class RollbackConfig(dg.Config):
    """What the retrain sensor found: the degraded champion and the labelled batches it failed on."""

    champion_version: int
    batches: list[str]


@dg.op(pool=WRITER_POOL)
def weigh_rollback(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    project: ProjectResource,
    mlflow: MlflowResource,
    alerts: AlertResource,
) -> None:
    """Rolls `champion` back to an earlier champion only if it is credibly better on the live labels and good enough.

    Every earlier champion in the history (never one rolled back before) is scored on the same
    labelled rows as the degraded champion; `ml_assets/lib/retrain.py` `decide_rollback` holds the
    rule, and the move goes through the one registry writer, so a pin or a newer champion wins.
    """
    from ml_assets.lib import promotion
    from ml_assets.lib.snapshot import read_validated

    params = project.params()
    name, current = params.registry.model_name, str(config.champion_version)
    outcome = promotion.roll_back_if_better(
        mlflow.client(),
        mlflow.uri,
        name,
        rows=read_validated(project.path(params.data.validated_dir), config.batches, target=params.data.target),
        target=params.data.target,
        current=current,
        min_score=params.retrain.min_live_score,
        samples=params.gates.bootstrap_samples,
        confidence=params.gates.confidence,
        seed=params.split.seed,
        run_id=context.run_id,
        now=datetime.now(UTC),
    )
    for note in outcome.unscorable:
        context.log.warning(f"not a rollback candidate: {note}")
    if outcome.event is None:
        title = "rollback refused" if outcome.refused else "no earlier version is better"
        detail = outcome.refused or outcome.detail
        alerts.send(
            context,
            Alert(
                title=f"`{name}` v{current} degraded; {title}",
                detail=f"{detail}. Retraining (reason: performance); a person may approve a challenger, "
                "force a rollback (`rollback_champion`) or pin (`pin_champion`)",
            ),
        )
        return
    metadata = {"champion_version": int(outcome.event.version or 0), "replaced_version": int(current)}
    context.log_event(dg.AssetMaterialization("champion_model", metadata={**metadata, "action": "rollback"}))
    context.log_event(dg.AssetMaterialization("champion_history", metadata=history_metadata(mlflow, name)))
    alerts.send(
        context,
        Alert(title=f"`{name}` rolled back from v{current} to v{outcome.event.version}", detail=outcome.detail),
    )


@dg.job(
    description="Weigh a rollback of a degraded champion to a credibly better earlier one (from the retrain sensor)."
)
def live_rollback_job() -> None:
    """Weigh a rollback."""
    weigh_rollback()
