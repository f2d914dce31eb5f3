"""Inference: each validated batch is scored by the champion, and the scores are kept beside it as Parquet.

Online requests go to `make serve` (`ml_assets/serving/`); this is the batch path.
"""

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import OWNERS, RETRY
from ml_assets.defs.ingestion import landing_batches, validated_batch
from ml_assets.defs.resources import MlflowResource, ProjectResource

PREDICTIONS_DIR = "data/predictions"


@dg.asset(
    partitions_def=landing_batches,
    deps=[validated_batch],
    group_name="inference",
    kinds={"sklearn", "mlflow", "parquet"},
    owners=OWNERS,
    code_version="1",
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
)
def predictions(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, landed_batch: pd.DataFrame
) -> dg.MaterializeResult:
    """The champion's scores for this batch: its id columns, the predicted class and each class's probability.

    Written to `data/predictions/<batch>.v<version>.parquet`, so a later champion adds a file and
    never overwrites an earlier one's scores. The alias is resolved once and that version is
    loaded, so the recorded version is the one that scored.
    """
    from ml_assets.lib import inference, tracking

    params = project.params()
    name = params.registry.model_name
    champion = tracking.alias_version(mlflow.client(), name, tracking.CHAMPION)
    if champion is None:
        context.log.info(f"batch `{context.partition_key}`: no champion of `{name}` yet, nothing scored")
        return dg.MaterializeResult(metadata={"status": "no_champion"})
    model = tracking.load_model(mlflow.uri, f"models:/{name}/{champion.version}")
    frame = inference.predict_frame(
        model, landed_batch, id_columns=params.data.id_columns, model_version=champion.version
    )
    out = inference.predictions_path(project.path(PREDICTIONS_DIR), context.partition_key, version=champion.version)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)  # atomic: a reader never sees half a file
    summary = inference.summarize_predictions(frame)
    context.log.info(f"batch `{context.partition_key}`: {len(frame)} rows scored by `{name}` v{champion.version}")
    return dg.MaterializeResult(
        metadata={
            "status": "scored",
            "dagster/row_count": len(frame),
            "champion_version": int(champion.version),
            "path": dg.MetadataValue.path(str(out)),
            "positive_class": summary.positive_class,
            "mean_probability": summary.mean_probability,
            "probability_quantiles": dg.MetadataValue.json(summary.quantiles),
            "class_shares": dg.MetadataValue.json(summary.class_shares),
        }
    )
