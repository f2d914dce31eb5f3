"""Inference: each validated batch is scored by the champion, and the scores are kept beside it as Parquet.

Online requests go to `make serve` (`ml_assets/serving/`); this is the batch path. The scores
depend on the champion too, so when a champion first exists or changes, every batch is scored
again by it (one backfill run, each version's scores kept in their own file).
"""

import dagster as dg

from ml_assets.defs.graph import EAGER_ON_UPDATES, OWNERS, RETRY
from ml_assets.defs.ingestion import landing_batches, validated_batch
from ml_assets.defs.registry import champion_model
from ml_assets.defs.resources import MlflowResource, ProjectResource

PREDICTIONS_DIR = "data/predictions"


@dg.asset(
    partitions_def=landing_batches,
    deps=[validated_batch, champion_model],
    group_name="inference",
    kinds={"sklearn", "mlflow", "parquet"},
    owners=OWNERS,
    code_version="2",
    retry_policy=RETRY,
    automation_condition=EAGER_ON_UPDATES,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
)
def predictions(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource):
    """The champion's scores for each batch: its id columns, the predicted class and each class's probability.

    Written to `data/predictions/<batch>.v<version>.parquet`, so a later champion adds a file and
    never overwrites an earlier one's scores. The alias is resolved once and that version is
    loaded, so the recorded version is the one that scored. Without a champion nothing is scored
    and nothing is materialized: the batches are scored once one exists.
    """
    from ml_assets.lib import inference, tracking

    params = project.params()
    name = params.registry.model_name
    champion = tracking.load_champion(mlflow.client(), mlflow.uri, name)
    if champion.version is None or champion.model is None:
        context.log.info(f"not scored: {champion.blocker or f'no champion of `{name}` yet'}; scored once there is one")
        return
    scored = inference.score_batches(
        champion.model,
        validated_dir=project.path(params.data.validated_dir),
        out_dir=project.path(PREDICTIONS_DIR),
        batches=context.partition_keys,
        id_columns=params.data.id_columns,
        model_version=champion.version,
    )
    context.log.info(
        f"{len(scored)} batch(es), {sum(s.rows for s in scored.values())} rows scored by v{champion.version}"
    )
    summary = next(iter(scored.values())) if len(scored) == 1 else None
    yield dg.MaterializeResult(
        metadata={
            "champion_version": int(champion.version),
            "dagster/row_count": sum(s.rows for s in scored.values()),
            "batches_scored": len(scored),
            **(
                {
                    "positive_class": summary.positive_class,
                    "mean_probability": summary.mean_probability,
                    "probability_quantiles": dg.MetadataValue.json(summary.quantiles),
                    "class_shares": dg.MetadataValue.json(summary.class_shares),
                }
                if summary
                else {}
            ),
        }
    )
