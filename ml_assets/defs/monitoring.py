"""Monitoring: drift of each validated batch, the champion's live performance on it, and the rollback rule.

Each validated batch is compared with the champion's training data and, when it carries labels,
used to score the champion live. A degraded champion is weighed against every earlier champion
by `live_rollback_job`, which the retrain sensor starts.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import OWNERS, RETRY, WRITER_POOL, code_version
from ml_assets.defs.ingestion import landing_batches, validated_batch
from ml_assets.defs.registry import history_metadata
from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource
from ml_assets.lib.alerts import Alert


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
        metadata["features"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}) for r in records
            ]
        )
        metadata["chart"] = dg.MetadataValue.md(
            plots.as_markdown_image(plots.drift_png(records, psi_threshold=drift.psi_threshold), alt="drift")
        )
    return dg.Output(report.to_dict(), metadata=metadata)


@dg.asset(
    partitions_def=landing_batches,
    deps=[validated_batch],
    group_name="monitoring",
    kinds={"sklearn", "mlflow"},
    owners=OWNERS,
    code_version=code_version("2", "retrain.performance_metric", "retrain.min_live_score"),
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec("champion_meets_min_live_score", asset="live_performance", partitions_def=landing_batches)
    ],
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
    status = "no_champion" if champion.version is None else "unlabelled" if labels.nunique() < 2 else None
    if status or champion.model is None:
        status = status or "champion_unloadable"
        detail = champion.blocker or {"no_champion": "no champion yet", "unlabelled": "no labels in this batch"}[status]
        yield dg.Output({"status": status, "degraded": False}, metadata={"status": status, "detail": detail})
        yield dg.AssetCheckResult(
            passed=status != "champion_unloadable",
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"not measured: {detail}",
        )
        return
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
    yield dg.AssetCheckResult(
        passed=not check.degraded,
        severity=dg.AssetCheckSeverity.ERROR,
        description=check.detail,
        metadata={metric: check.champion_score, f"min_{metric}": params.retrain.min_live_score},
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
    rule. The move goes through the one registry writer, so a pin or a newer champion wins.
    """
    from ml_assets.lib import promotion, tracking
    from ml_assets.lib.retrain import decide_rollback
    from ml_assets.lib.snapshot import validated_batch_path

    params = project.params()
    name, target, current = params.registry.model_name, params.data.target, str(config.champion_version)
    client = mlflow.client()
    folder = project.path(params.data.validated_dir)
    frames = [pd.read_parquet(p) for b in config.batches if (p := validated_batch_path(folder, b)).is_file()]
    rows = pd.concat(frames, ignore_index=True).dropna(subset=[target]) if frames else pd.DataFrame()
    earlier = promotion.rollback_candidates(client, name, current=current)
    proba, classes = {}, None
    for version in [current, *earlier]:
        try:
            model = tracking.load_model(mlflow.uri, f"models:/{name}/{version}")
            proba[version] = model.predict_proba(rows.drop(columns=[target]))
            classes = classes or list(model.classes_)
        except Exception as error:  # an earlier version that cannot score today's rows is no candidate
            context.log.warning(f"v{version} cannot score the live rows ({error}); not a rollback candidate")
    if current not in proba or rows.empty:
        alerts.send(
            context,
            Alert(
                title=f"`{name}` v{current}: rollback not weighed",
                detail="no labelled rows or the champion cannot score them",
            ),
        )
        return
    decision = decide_rollback(
        rows[target],
        {v: p for v, p in proba.items() if list(p.shape)[1:] == [len(classes or [])]},
        current=current,
        classes=classes or [],
        min_score=params.retrain.min_live_score,
        samples=params.gates.bootstrap_samples,
        confidence=params.gates.confidence,
        seed=params.split.seed,
    )
    context.log.info(decision.detail)
    if decision.to_version is None:
        alerts.send(
            context,
            Alert(
                title=f"`{name}` v{current} degraded and no earlier version is better",
                detail=f"{decision.detail}. Retraining (reason: performance); a person may approve a challenger, "
                "force a rollback (`rollback_champion`) or pin (`pin_champion`)",
            ),
        )
        return
    try:
        event = promotion.move_champion(
            client,
            name,
            to_version=decision.to_version,
            expected=current,
            action="rollback",
            reason=decision.detail[:1000],
            actor="automation:performance",
            run_id=context.run_id,
            now=datetime.now(UTC),
            automated=True,
            metrics={f"live_roc_auc_v{v}": s for v, s in decision.scores.items()},
        )
    except promotion.PromotionRefused as refused:
        alerts.send(context, Alert(title=f"`{name}` v{current} degraded; rollback refused", detail=str(refused)))
        return
    context.log_event(
        dg.AssetMaterialization(
            "champion_model",
            metadata={
                "champion_version": int(event.version or 0),
                "replaced_version": int(current),
                "action": "rollback",
            },
        )
    )
    context.log_event(dg.AssetMaterialization("champion_history", metadata=history_metadata(mlflow, name)))
    alerts.send(
        context,
        Alert(
            title=f"`{name}` rolled back from v{current} to v{event.version}",
            detail=decision.detail,
            severity="warning",
        ),
    )


@dg.job(
    description="Weigh a rollback of a degraded champion to an earlier, credibly better one (started by the retrain sensor)."
)
def live_rollback_job() -> None:
    """Weigh a rollback."""
    weigh_rollback()
