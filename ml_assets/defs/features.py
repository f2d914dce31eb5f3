"""Features: the deterministic stratified split and the preprocessing pipeline.

The split's test part is the frozen, DVC-pinned holdout; the preprocessing is fit on the training
part only.
"""

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import CODE_VERSIONS, OWNERS, RETRY, TRAINING_POOL
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib


@dg.asset(
    group_name="features",
    kinds={"pandas", "dvc"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["dataset_split"],
    pool=TRAINING_POOL,
    retry_policy=RETRY,
)
def dataset_split(
    context: dg.AssetExecutionContext, project: ProjectResource, training_snapshot: pd.DataFrame
) -> dg.Output[features_lib.TrainingData]:
    """Train, validation and test parts of the snapshot, stratified by the target and seeded from params.

    The test part is written as the holdout Parquet and committed to DVC, so the candidate and the
    champion are always judged on the same pinned rows.
    """
    params = project.params()
    spec = features_lib.infer_feature_spec(
        training_snapshot,
        target=params.data.target,
        id_columns=params.data.id_columns,
        feature_types=params.data.feature_types,
    )
    split = features_lib.split_dataset(
        training_snapshot,
        target=params.data.target,
        test_size=params.split.test_size,
        validation_size=params.split.validation_size,
        seed=params.split.seed,
        id_columns=params.data.id_columns,
    )
    holdout = project.path(params.data.holdout_path)
    holdout.parent.mkdir(parents=True, exist_ok=True)
    split.test.to_parquet(holdout, index=False)
    store = project.dvc()
    snapshot_md5 = store.stage_outputs("training_snapshot")[params.data.snapshot_path]
    holdout_md5 = store.commit_stage("holdout")[params.data.holdout_path]
    store.push("holdout")
    return dg.Output(
        features_lib.TrainingData(split=split, spec=spec, snapshot_md5=snapshot_md5, holdout_md5=holdout_md5),
        metadata={
            **{f"rows_{part}": n for part, n in split.sizes().items()},
            "numeric_features": ", ".join(spec.numeric),
            "categorical_features": ", ".join(spec.categorical),
            "snapshot_dvc_md5": snapshot_md5,
            "holdout_dvc_md5": holdout_md5,
        },
    )


@dg.asset_check(asset=dataset_split, blocking=True)
def split_sizes_as_configured(
    project: ProjectResource, dataset_split: features_lib.TrainingData
) -> dg.AssetCheckResult:
    """Each part holds the configured share of every class (within one row of rounding)."""
    params = project.params()
    data = dataset_split.split
    target = dataset_split.spec.target
    total = (
        data.train[target].value_counts() + data.validation[target].value_counts() + data.test[target].value_counts()
    )
    worst = 0.0
    for part, share in (("test", params.split.test_size), ("validation", params.split.validation_size)):
        counts = getattr(data, part)[target].value_counts().reindex(total.index, fill_value=0)
        worst = max(worst, float(((counts - total * share).abs()).max()))
    passed = worst <= 1.0 and len(data.train) > 0
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**data.sizes(), "max_rows_off_per_class": worst, "test_size": params.split.test_size},
        description=None
        if passed
        else f"a class is {worst:.0f} rows off its configured share; check `split` in params.yaml",
    )


@dg.asset_check(asset=dataset_split, blocking=True)
def no_target_leakage(project: ProjectResource, dataset_split: features_lib.TrainingData) -> dg.AssetCheckResult:
    """No leakage: the target is not a feature, no row is in two parts, no feature alone predicts the target."""
    params = project.params()
    report = features_lib.find_leakage(
        dataset_split.split, dataset_split.spec, id_columns=params.data.id_columns, seed=params.split.seed
    )
    return dg.AssetCheckResult(
        passed=not report.leaks,
        metadata={
            "target_in_features": report.target_in_features,
            "overlapping_rows": report.overlapping_rows,
            "suspicious_features": dg.MetadataValue.json(report.suspicious_features),
        },
        description=(
            f"leakage found: target in features={report.target_in_features}, rows shared by train and "
            f"test={report.overlapping_rows}, near-perfect single features={report.suspicious_features}; "
            "drop the leaking columns via params.yaml `data.id_columns` or fix the data"
            if report.leaks
            else None
        ),
    )


@dg.asset(
    group_name="features",
    kinds={"sklearn"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["feature_pipeline"],
    pool=TRAINING_POOL,
)
def feature_pipeline(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    dataset_split: features_lib.TrainingData,
) -> dg.Output[object]:
    """The preprocessing (impute and scale numbers, impute and one-hot categories), fit on the training part only.

    It also opens the Dagster run's MLflow run (before the candidates fan out, so parallel steps
    find one parent), tagged with the data versions every candidate is trained on.
    """
    preprocessor = features_lib.fit_preprocessor(dataset_split.split.train, dataset_split.spec)
    parent = mlflow.parent_run(
        context,
        experiment_name=project.params().registry.experiment_name,
        tags={"dvc.snapshot_md5": dataset_split.snapshot_md5, "dvc.holdout_md5": dataset_split.holdout_md5}
        | {f"rows_{part}": str(n) for part, n in dataset_split.split.sizes().items()},
    )
    return dg.Output(
        preprocessor,
        metadata={"output_features": len(preprocessor.get_feature_names_out()), "mlflow_parent_run": parent},
    )


@dg.asset_check(
    asset=feature_pipeline,
    blocking=True,
    additional_ins={"dataset_split": dg.AssetIn("dataset_split")},
)
def no_nan_or_inf_after_transform(
    feature_pipeline: object, dataset_split: features_lib.TrainingData
) -> dg.AssetCheckResult:
    """Every part transforms to finite numbers only (no NaN, no infinity)."""
    columns = list(dataset_split.spec.features)
    counts = {
        part: features_lib.count_non_finite(feature_pipeline.transform(getattr(dataset_split.split, part)[columns]))  # type: ignore[attr-defined]
        for part in ("train", "validation", "test")
    }
    bad = {k: v for k, v in counts.items() if v}
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={f"non_finite_{k}": v for k, v in counts.items()},
        description=f"non-finite cells after transform: {bad}; check the imputers in lib/features.py" if bad else None,
    )
