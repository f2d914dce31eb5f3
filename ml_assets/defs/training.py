"""Training: one asset per candidate, and the best of them.

Each candidate in `params.yaml` is its own step (so they run in parallel) and its own MLflow run;
the best on the validation part becomes the trained model.
"""

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS, GRAPH, OWNERS, RETRY, TRAINING_CODE_VERSION
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib
from ml_assets.lib.training import CandidateModel, pick_best


def _train_or_reuse(
    context: dg.AssetExecutionContext,
    *,
    name: str,
    project: ProjectResource,
    mlflow: MlflowResource,
    data: features_lib.TrainingData,
    preprocessor: object,
) -> CandidateModel:
    from ml_assets.lib import tracking
    from ml_assets.lib.evaluation import score_model
    from ml_assets.lib.lineage import git_commit, training_fingerprint
    from ml_assets.lib.training import train_candidate

    params = project.params()
    spec = params.training.candidate(name)
    fingerprint = training_fingerprint(
        snapshot_md5=data.snapshot_md5,
        params={
            "data": {k: params.raw["data"].get(k) for k in ("target", "id_columns", "feature_types")},
            "split": params.raw["split"],
            "candidate": {"name": name, "estimator": spec.estimator, "params": dict(spec.params)},
        },
        code_version=TRAINING_CODE_VERSION,
    )
    client = mlflow.client()
    experiment_id = mlflow.experiment_id(params.registry.experiment_name)
    previous = tracking.find_run(
        client, experiment_id, tags={tracking.FINGERPRINT_TAG: fingerprint, "ml_assets.candidate": name}
    )
    if previous is not None:
        run = client.get_run(previous)
        context.log.info(f"candidate `{name}`: same data, params and code as MLflow run {previous}; reusing it")
        return CandidateModel(
            name=name,
            model=tracking.load_model(mlflow.uri, run.data.tags["model_uri"]),
            run_id=previous,
            model_uri=run.data.tags["model_uri"],
            fingerprint=fingerprint,
            validation_metrics={k: v for k, v in run.data.metrics.items() if not k.startswith("test_")},
            reused=True,
        )
    split = data.split
    position = [c.name for c in params.training.candidates].index(name) + 1
    context.log.info(
        f"candidate {position} of {len(params.training.candidates)} (`{name}`): "
        f"training {spec.estimator} on {len(split.train)} rows x {len(data.spec.features)} features"
    )
    model = train_candidate(
        split.train,
        preprocessor=preprocessor,
        spec=spec,
        features=data.spec,
        seed=params.split.seed,  # type: ignore[arg-type]
    )
    validation = score_model(model, split.validation, features=data.spec.features, target=data.spec.target)
    metrics = {**validation.scalars(), "neg_log_loss": -validation.log_loss}
    logged = tracking.log_sklearn_model(
        tracking_uri=mlflow.uri,
        experiment_id=experiment_id,
        run_name=f"{name}-{data.snapshot_md5[:8]}",
        model=model,
        params={
            "estimator": spec.estimator,
            **spec.params,
            "split_seed": params.split.seed,
            "rows_train": len(split.train),
        },
        metrics=metrics,
        tags={
            tracking.FINGERPRINT_TAG: fingerprint,
            "ml_assets.candidate": name,
            "dagster_run_id": context.run_id,
            "dagster_run_url": mlflow.dagster_run_url(context.run_id),
            "dvc.snapshot_md5": data.snapshot_md5,
            "dvc.holdout_md5": data.holdout_md5,
            "git_commit": git_commit(project.locations.root),
            "params_hash": params.section_hash(),
            "code_version": TRAINING_CODE_VERSION,
        },
        input_example=split.train.loc[:, list(data.spec.features)].head(5),
        params_document=params.raw,
    )
    return CandidateModel(
        name=name,
        model=model,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        fingerprint=fingerprint,
        validation_metrics=metrics,
        reused=False,
    )


def build_candidate_asset(name: str, estimator: str) -> dg.AssetsDefinition:
    """Builds the asset that trains candidate `name` (one per entry of `training.candidates`)."""

    @dg.asset(
        name=f"candidate_{name}",
        group_name="training",
        kinds={"sklearn", "mlflow"},
        owners=OWNERS,
        code_version=CODE_VERSIONS[f"candidate_{name}"],
        description=(
            f"Candidate `{name}` ({estimator}) trained on the training part behind the shared "
            "preprocessing and logged as an MLflow run with its signature and input example."
        ),
        retry_policy=RETRY,
    )
    def candidate(
        context: dg.AssetExecutionContext,
        project: ProjectResource,
        mlflow: MlflowResource,
        dataset_split: features_lib.TrainingData,
        feature_pipeline: object,
    ) -> dg.Output[CandidateModel]:
        result = _train_or_reuse(
            context, name=name, project=project, mlflow=mlflow, data=dataset_split, preprocessor=feature_pipeline
        )
        return dg.Output(
            result,
            metadata={
                **{f"validation_{k}": round(v, 4) for k, v in result.validation_metrics.items()},
                "mlflow_run_id": result.run_id,
                "mlflow_run": dg.MetadataValue.url(
                    mlflow.run_url(mlflow.experiment_id(project.params().registry.experiment_name), result.run_id)
                ),
                "fingerprint": result.fingerprint,
                "reused": result.reused,
            },
        )

    return candidate


CANDIDATE_NAMES = tuple(spec.name for spec in GRAPH.training.candidates)
candidate_assets = [build_candidate_asset(spec.name, spec.estimator) for spec in GRAPH.training.candidates]


@dg.asset(
    ins={f"candidate_{name}": dg.AssetIn(f"candidate_{name}") for name in CANDIDATE_NAMES},
    group_name="training",
    kinds={"sklearn", "mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["trained_model"],
)
def trained_model(
    context: dg.AssetExecutionContext, project: ProjectResource, **candidates: CandidateModel
) -> dg.Output[CandidateModel]:
    """The candidate with the best validation score on the metric named in params (`training.selection_metric`)."""
    metric = project.params().training.selection_metric
    best = pick_best(list(candidates.values()), metric=metric)
    ranked = sorted(candidates.values(), key=lambda c: -c.validation_metrics[metric])
    context.log.info(f"best of {len(ranked)} candidates by validation {metric}: `{best.name}`")
    return dg.Output(
        best,
        metadata={
            "winner": best.name,
            f"validation_{metric}": round(best.validation_metrics[metric], 4),
            "mlflow_run_id": best.run_id,
            "leaderboard": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "rank": i + 1,
                            "candidate": c.name,
                            **{k: round(v, 4) for k, v in sorted(c.validation_metrics.items())},
                        }
                    )
                    for i, c in enumerate(ranked)
                ]
            ),
        },
    )
