"""Evaluation: held-out metrics and the blocking model gates.

The trained model is scored next to a DummyClassifier baseline and the current champion, all on
the same DVC-pinned holdout.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS, OWNERS, RETRY, TRAINING_POOL
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib
from ml_assets.lib import gates
from ml_assets.lib.evaluation import CandidateEvaluation
from ml_assets.lib.training import CandidateModel

MODEL_GATES = (
    "meets_min_roc_auc",
    "meets_min_f1",
    "beats_baseline",
    "latency_within_bound",
    "no_null_predictions",
    "predicts_every_class",
    "slices_meet_min_roc_auc",
)
"""Properties of the model alone; the comparison with the champion is checked on `registered_model`."""


@dg.asset(
    group_name="evaluation",
    kinds={"sklearn", "mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["model_evaluation"],
    pool=TRAINING_POOL,
    retry_policy=RETRY,
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    trained_model: CandidateModel,
    dataset_split: features_lib.TrainingData,
) -> dg.Output[CandidateEvaluation]:
    """Held-out test metrics of the trained model, beside a baseline and the champion, overall and by slice.

    Accuracy, F1, ROC AUC, log loss and the confusion matrix, all on the frozen DVC-pinned holdout;
    the gate metrics per categorical value and configured slice; permutation importances.
    """
    from ml_assets.lib import tracking
    from ml_assets.lib.evaluation import evaluate_candidate
    from ml_assets.lib.slices import SliceOptions

    params = project.params()
    settings = params.evaluation
    spec = dataset_split.spec
    client = mlflow.client()
    champion = tracking.load_champion(client, mlflow.uri, params.registry.model_name)
    evaluation = evaluate_candidate(
        trained_model.model,
        train=dataset_split.split.train,
        holdout=dataset_split.split.test,
        features=spec.features,
        target=spec.target,
        champion=champion.model,
        champion_version=champion.version,
        champion_blocker=champion.blocker,
        bootstrap_samples=params.gates.bootstrap_samples,
        confidence=params.gates.confidence,
        latency_samples=params.gates.latency_samples,
        seed=params.split.seed,
        slicing=SliceOptions(
            features=spec.categorical if settings.slice_features is None else settings.slice_features,
            configured=settings.slices,
            max_values_per_feature=settings.max_values_per_feature,
            min_rows=settings.min_slice_rows,
            min_class_rows=settings.min_slice_class_rows,
        ),
        explanation_rows=settings.explanation_rows,
        explanation_repeats=settings.explanation_repeats,
    )
    tracking.log_evaluation(
        mlflow.uri,
        run_id=trained_model.run_id,
        model_uri=trained_model.model_uri,
        metrics={f"test_{k}": v for k, v in evaluation.metrics.scalars().items()},
        holdout=dataset_split.split.test,
        holdout_md5=dataset_split.holdout_md5,
        target=dataset_split.spec.target,
    )
    context.log.info(
        f"`{trained_model.name}` on {evaluation.metrics.n_rows} holdout rows; {evaluation.comparison.note}"
    )
    return dg.Output(
        evaluation,
        metadata={
            **{f"test_{k}": round(v, 4) for k, v in evaluation.metrics.scalars().items()},
            "baseline_roc_auc": round(evaluation.baseline.roc_auc, 4),
            "champion_roc_auc": round(evaluation.champion.roc_auc, 4) if evaluation.champion else None,
            "champion": evaluation.comparison.note,
            "cpu_ms_per_row": round(evaluation.latency.cpu_ms_per_row, 4),
            "wall_p95_ms": round(evaluation.latency.p95_ms, 3),
            "holdout_dvc_md5": dataset_split.holdout_md5,
            **_slice_metadata(evaluation),
            **_plots(trained_model, dataset_split, evaluation),
        },
    )


SLICE_COLUMNS = (
    dg.TableColumn("slice", "string", description="`feature=value` or a configured name (params.yaml)"),
    dg.TableColumn("rows", "int"),
    dg.TableColumn("roc_auc", "float"),
    dg.TableColumn("f1", "float"),
    dg.TableColumn("accuracy", "float"),
    dg.TableColumn("champion_roc_auc", "float", description="the champion on the same rows, when comparable"),
    dg.TableColumn("vs_champion", "float", description="candidate minus champion roc_auc"),
    dg.TableColumn("note", "string", description="empty when judged; else why not"),
)


def _slice_metadata(evaluation: CandidateEvaluation) -> dict[str, Any]:
    """The slice table and its counts, for the UI."""
    from ml_assets.lib.slices import slice_table

    report = evaluation.slices
    if report is None:
        return {}
    rows = slice_table(report, champion_version=evaluation.comparison.champion_version)
    return {
        "slices": dg.MetadataValue.table(
            records=[dg.TableRecord(r) for r in rows], schema=dg.TableSchema(columns=list(SLICE_COLUMNS))
        ),
        "slices_judged": len(report.judged),
        "slices_not_judged": len(report.not_judged),
    }


def _plots(trained: CandidateModel, data: features_lib.TrainingData, evaluation: CandidateEvaluation) -> dict[str, Any]:
    """Confusion matrix, ROC and precision-recall curves, and permutation importances, as images."""
    from ml_assets.lib import plots

    holdout = data.split.test
    features = list(data.spec.features)
    labels = [str(c) for c in evaluation.metrics.classes]
    images = {
        "confusion_matrix": plots.confusion_matrix_png(evaluation.metrics.confusion_matrix, labels=labels),
    }
    labels_true = holdout[data.spec.target].to_numpy()
    if evaluation.explanation is not None:
        images["feature_importance"] = plots.feature_importance_png(
            evaluation.explanation.means(),
            title=f"Permutation importance ({evaluation.explanation.rows} holdout rows)",
        )
    if len(labels) == 2:
        scores = trained.model.predict_proba(holdout[features])[:, 1]
        positive = evaluation.metrics.classes[1]
        images["roc_pr_curves"] = plots.roc_pr_curves_png(labels_true, scores, positive=positive)
    return {name: dg.MetadataValue.md(plots.as_markdown_image(png, alt=name)) for name, png in images.items()}


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(name, asset=model_evaluation, blocking=True) for name in MODEL_GATES],
    can_subset=False,
)
def model_gates(project: ProjectResource, model_evaluation: CandidateEvaluation) -> Iterator[dg.AssetCheckResult]:
    """The model gates: thresholds, baseline, latency, null predictions, class coverage, slice floor."""
    verdicts = gates.model_verdicts(model_evaluation, project.params().gates)
    for name in MODEL_GATES:
        verdict = verdicts[name]
        yield dg.AssetCheckResult(
            check_name=name,
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=verdict.message if verdict.passed else f"{verdict.message}; nothing is registered or promoted",
            metadata=verdict.metadata(),
        )
