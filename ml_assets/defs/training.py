"""Training: one asset per estimator family, and the best of them.

Each family in `params.yaml` is its own step (so they run in parallel) that searches its grid by
successive halving (`ml_assets/lib/training.py`) and logs its winner as one MLflow run, with every
configuration tried in the run's `search.json` and the asset's metadata; the best family on the
validation part becomes the trained model.
"""

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS, GRAPH, OWNERS, RETRY, TRAINING_CODE_VERSION, TRAINING_POOL
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib
from ml_assets.lib.config import Params
from ml_assets.lib.training import CandidateModel, pick_best

CONFIG_TAG = "ml_assets.config"
"""MLflow run tag: the chosen configuration as JSON (`make reproduce` refits exactly this)."""
ROWS_TAG = "ml_assets.rows_fit"
"""MLflow run tag: the training rows the chosen configuration was fit on."""
SEARCH_ARTIFACT = "search.json"
"""MLflow run artifact: every configuration the search tried, with its rows, iterations and score."""
SEARCH_TIME = "search_seconds"
"""A metric of the candidate's run that is not a validation metric: the seconds its search took."""


def _fingerprint(params: Params, name: str, snapshot_md5: str) -> str:
    from ml_assets.lib.lineage import training_fingerprint

    spec = params.training.candidate(name)
    return training_fingerprint(
        snapshot_md5=snapshot_md5,
        params={
            "data": {k: params.raw["data"].get(k) for k in ("target", "id_columns", "feature_types")},
            "split": params.raw["split"],
            "candidate": params.raw["training"]["candidates"][name] | {"name": name, "estimator": spec.estimator},
            "search": params.raw["training"].get("search"),
            "selection_metric": params.training.selection_metric,
        },
        code_version=TRAINING_CODE_VERSION,
    )


def _reuse(mlflow: MlflowResource, name: str, run_id: str, fingerprint: str) -> CandidateModel:
    import json

    import mlflow as mlflow_lib
    import mlflow.artifacts as mlflow_artifacts

    from ml_assets.lib import tracking
    from ml_assets.lib.training import Trial

    run = mlflow.client().get_run(run_id)
    mlflow_lib.set_tracking_uri(mlflow.uri)
    search = mlflow_artifacts.load_dict(f"runs:/{run_id}/{SEARCH_ARTIFACT}")
    return CandidateModel(
        name=name,
        model=tracking.load_model(mlflow.uri, run.data.tags["model_uri"]),
        run_id=run_id,
        model_uri=run.data.tags["model_uri"],
        fingerprint=fingerprint,
        # the run also holds the search's time and the holdout (`test_`) metrics: only validation ones
        validation_metrics={
            k: v for k, v in run.data.metrics.items() if not k.startswith("test_") and k != SEARCH_TIME
        },
        reused=True,
        config=json.loads(run.data.tags[CONFIG_TAG]),
        rows=int(run.data.tags[ROWS_TAG]),
        trials=tuple(Trial(**t) for t in search["trials"]),
        budget_exhausted=bool(search["budget_exhausted"]),
    )


def _train_or_reuse(
    context: dg.AssetExecutionContext,
    *,
    name: str,
    project: ProjectResource,
    mlflow: MlflowResource,
    data: features_lib.TrainingData,
    preprocessor: object,
) -> CandidateModel:
    import json
    from dataclasses import asdict

    from ml_assets.lib import tracking
    from ml_assets.lib.evaluation import score_model
    from ml_assets.lib.lineage import git_commit
    from ml_assets.lib.training import search_candidate

    params = project.params()
    spec = params.training.candidate(name)
    fingerprint = _fingerprint(params, name, data.snapshot_md5)
    client = mlflow.client()
    experiment_id = mlflow.experiment_id(params.registry.experiment_name)
    previous = tracking.find_run(
        client, experiment_id, tags={tracking.FINGERPRINT_TAG: fingerprint, "ml_assets.candidate": name}
    )
    if previous is not None:
        context.log.info(f"candidate `{name}`: same data, params and code as MLflow run {previous}; reusing it")
        return _reuse(mlflow, name, previous, fingerprint)
    split = data.split
    position = [c.name for c in params.training.candidates].index(name) + 1
    context.log.info(
        f"candidate {position} of {len(params.training.candidates)} (`{name}`): searching "
        f"{len(spec.configurations())} configuration(s) of {spec.estimator} on up to {len(split.train)} rows "
        f"x {len(data.spec.features)} features"
    )
    result = search_candidate(
        split.train,
        split.validation,
        preprocessor=preprocessor,  # type: ignore[arg-type]
        spec=spec,
        features=data.spec,
        metric=params.training.selection_metric,
        schedule=params.training.search,
        seed=params.split.seed,
        log=context.log.info,
    )
    validation = score_model(result.model, split.validation, features=data.spec.features, target=data.spec.target)
    metrics = {**validation.scalars(), "neg_log_loss": -validation.log_loss}
    logged = tracking.log_sklearn_model(
        parent_run_id=mlflow.parent_run(context, experiment_name=params.registry.experiment_name),
        tracking_uri=mlflow.uri,
        experiment_id=experiment_id,
        run_name=f"{name}-{data.snapshot_md5[:8]}",
        model=result.model,
        params={
            "estimator": spec.estimator,
            **result.config,
            "split_seed": params.split.seed,
            "rows_train": len(split.train),
            "rows_fit": result.rows,
            "configurations_tried": len({json.dumps(t.config, sort_keys=True) for t in result.trials}),
            "budget_exhausted": result.budget_exhausted,
        },
        metrics={**metrics, SEARCH_TIME: result.seconds},
        tags={
            tracking.FINGERPRINT_TAG: fingerprint,
            "ml_assets.candidate": name,
            CONFIG_TAG: json.dumps(dict(result.config), sort_keys=True),
            ROWS_TAG: str(result.rows),
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
    client.log_dict(
        logged.run_id,
        {"trials": [asdict(t) for t in result.trials], "budget_exhausted": result.budget_exhausted},
        SEARCH_ARTIFACT,
    )
    return CandidateModel(
        name=name,
        model=result.model,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        fingerprint=fingerprint,
        validation_metrics=metrics,
        reused=False,
        config=result.config,
        rows=result.rows,
        trials=result.trials,
        budget_exhausted=result.budget_exhausted,
    )


def _trials_table(candidates: list[CandidateModel]) -> dg.MetadataValue:
    """Every configuration each family's search tried, the budget it got (rung, rows, iterations) and its score."""
    records = []
    for c in candidates:
        # show the params the search varied (all of them when it tried a single configuration)
        searched = tuple(sorted(k for k in c.config if len({repr(t.config.get(k)) for t in c.trials}) > 1))
        for t in c.trials:
            chosen = dict(t.config) == dict(c.config) and t.rows == c.rows
            records.append(dg.TableRecord({"candidate": c.name, **t.as_record(searched=searched), "chosen": chosen}))
    return dg.MetadataValue.table(
        records=records,
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("candidate", "string"),
                dg.TableColumn("config", "string", description="the searched params of this configuration"),
                dg.TableColumn("rung", "int", description="successive-halving round, 0 first"),
                dg.TableColumn("rows", "int", description="training rows this fit got"),
                dg.TableColumn("iterations", "string", description="boosting rounds, solver steps or trees used"),
                dg.TableColumn("validation_rows", "int"),
                dg.TableColumn("score", "float", description="validation selection metric on those rows"),
                dg.TableColumn("seconds", "float"),
                dg.TableColumn("chosen", "bool", description="the family's model"),
            ]
        ),
    )


def build_candidate_asset(name: str, estimator: str) -> dg.AssetsDefinition:
    """Builds the asset that trains candidate `name` (one per entry of `training.candidates`)."""

    @dg.asset(
        name=f"candidate_{name}",
        group_name="training",
        kinds={"sklearn", "mlflow"},
        owners=OWNERS,
        code_version=CODE_VERSIONS[f"candidate_{name}"],
        pool=TRAINING_POOL,
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
                "chosen_config": dg.MetadataValue.json(dict(result.config)),
                "rows_fit": result.rows,
                "configurations_tried": len(result.trials),
                "budget_exhausted": result.budget_exhausted,
                "search": _trials_table([result]),
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
    pool=TRAINING_POOL,
)
def trained_model(
    context: dg.AssetExecutionContext, project: ProjectResource, **candidates: CandidateModel
) -> dg.Output[CandidateModel]:
    """The candidate with the best validation score on the metric named in params (`training.selection_metric`)."""
    from dataclasses import asdict

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
                            "config": ", ".join(f"{k}={v}" for k, v in sorted(c.config.items())),
                            "rows_fit": c.rows if c.rows is not None else "",
                            **{k: round(v, 4) for k, v in sorted(c.validation_metrics.items())},
                        }
                    )
                    for i, c in enumerate(ranked)
                ]
            ),
            "search_trials": _trials_table(ranked),
            "budget": dg.MetadataValue.json(asdict(project.params().training.search)),
        },
    )
