"""Registry: registration in MLflow and promotion to `champion`, through one compare-and-set writer.

A model that passed its own gates becomes a registered version (alias `challenger`) with its model
card and explanations. Blocking checks then decide whether automation may promote it: it must load
and serve exactly what was evaluated, be shown non-inferior to the champion it was compared with,
overall and on every slice, and no person may have pinned the champion or rolled this version
back. Only then does `champion_model` move `champion`, and only if it still points at the version
the comparison was made against. Every move is recorded in `champion_history`.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS, OWNERS, RETRY, TRAINING_POOL, WRITER_POOL
from ml_assets.defs.resources import MlflowResource, ProjectResource
from ml_assets.lib import features as features_lib
from ml_assets.lib import gates
from ml_assets.lib.evaluation import CandidateEvaluation
from ml_assets.lib.training import CandidateModel

CHECKED_AFTER_REGISTRATION = (
    "loads_from_registry_and_matches",
    "serving_matches_training",
    "automation_may_promote",
)
"""Checks of `registered_model` that need the registered version; the model card lists them as pending."""


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["registered_model"],
    retry_policy=RETRY,
    pool=TRAINING_POOL,
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

    Registering the same training setup again (same fingerprint) returns the existing version. The
    version's run carries its model card (`model_card.md`) and explanations (`explanations.json`, a chart).
    """
    from ml_assets.lib import tracking
    from ml_assets.lib.lineage import git_commit

    params = project.params()
    client = mlflow.client()
    name = params.registry.model_name
    comparison = model_evaluation.comparison
    registration = tracking.register_or_reuse(
        client,
        model_name=name,
        model_uri=trained_model.model_uri,
        run_id=trained_model.run_id,
        fingerprint=trained_model.fingerprint,
        tags={
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
    number = str(registration.version.version)
    client.set_model_version_tag(name, number, "ml_assets.compared_with", comparison.note[:4000])
    for gate, verdict in gates.model_verdicts(model_evaluation, params.gates).items():  # on the version's page
        client.set_model_version_tag(name, number, f"gate.{gate}", gates.as_tag(verdict))
    # the card before the alias: `challenger` only ever names a version whose run holds its card
    run_id = registration.version.run_id or trained_model.run_id
    card = _write_model_card(project, mlflow, number, run_id, trained_model, dataset_split, model_evaluation)
    client.set_registered_model_alias(name, tracking.CHALLENGER, number)
    context.log.info(f"`{name}` v{number} is `challenger`; {comparison.note}")
    return dg.Output(
        number,
        metadata={
            "model_name": name,
            "version": int(number),
            "newly_registered": registration.created,
            "compared_with": comparison.note,
            "model_version": dg.MetadataValue.url(mlflow.version_url(name, number)),
            "mlflow_run": dg.MetadataValue.url(
                mlflow.run_url(mlflow.experiment_id(params.registry.experiment_name), trained_model.run_id)
            ),
            "dvc_snapshot_md5": dataset_split.snapshot_md5,
            "dvc_holdout_md5": dataset_split.holdout_md5,
            "params_hash": params.section_hash(),
            "code_version": CODE_VERSIONS["trained_model"],
            "fingerprint": trained_model.fingerprint,
            **card,
        },
    )


def _write_model_card(
    project: ProjectResource,
    mlflow: MlflowResource,
    version: str,
    run_id: str,
    trained: CandidateModel,
    data: features_lib.TrainingData,
    evaluation: CandidateEvaluation,
) -> dict[str, Any]:
    """Logs the model card and explanations to the version's MLflow run (`run_id`); returns the UI metadata."""
    from ml_assets.lib import model_card, plots
    from ml_assets.lib.lineage import git_commit
    from ml_assets.lib.skew import describe_model

    params = project.params()
    limits = params.gates
    facts = model_card.CardFacts(
        model_name=params.registry.model_name,
        version=version,
        candidate=trained.name,
        model=describe_model(trained.model),
        run_id=run_id,
        snapshot_md5=data.snapshot_md5,
        holdout_md5=data.holdout_md5,
        split_rows=data.split.sizes(),
        numeric=data.spec.numeric,
        categorical=data.spec.categorical,
        target=data.spec.target,
        code_version=CODE_VERSIONS["trained_model"],
        params_hash=params.section_hash(),
        git_commit=git_commit(project.locations.root),
        intended_use=params.evaluation.model_card.intended_use,
        limitations=params.evaluation.model_card.limitations,
    )
    verdicts = {**gates.model_verdicts(evaluation, limits), **gates.champion_verdicts(evaluation, limits)}
    explanation = evaluation.explanation
    png = None
    if explanation is not None:
        png = plots.feature_importance_png(explanation.means(), title="Permutation importance (holdout)")

    def render(image: str | None) -> str:
        return model_card.render_model_card(
            facts,
            evaluation,
            verdicts=verdicts,
            checked_after_registration=CHECKED_AFTER_REGISTRATION,
            importance_image=image,
        )

    model_card.log_card_artifacts(
        mlflow.client(),
        run_id,
        card=render(f"![permutation importance]({model_card.IMPORTANCE_PNG_PATH})" if png else None),
        explanation={"model": facts.model_name, "version": version, **explanation.as_dict()} if explanation else None,
        importance_png=png,
    )
    run_url = mlflow.run_url(mlflow.client().get_run(run_id).info.experiment_id, run_id)
    return {
        "model_card": dg.MetadataValue.md(render(plots.as_markdown_image(png, alt="importance") if png else None)),
        "model_card_artifact": dg.MetadataValue.url(f"{run_url}/artifacts/{model_card.CARD_PATH}"),
        "top_features": ", ".join(list(explanation.means())[:5]) if explanation else "none",
    }


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


@dg.asset_check(asset=registered_model, blocking=True, additional_ins={"model_evaluation": dg.AssetIn()})
def no_regression_vs_champion(
    project: ProjectResource, mlflow: MlflowResource, registered_model: str, model_evaluation: CandidateEvaluation
) -> dg.AssetCheckResult:
    """Not worse than the champion it was compared with, by a paired bootstrap on the same holdout."""
    return _champion_gate("no_regression_vs_champion", project, mlflow, registered_model, model_evaluation)


@dg.asset_check(asset=registered_model, blocking=True, additional_ins={"model_evaluation": dg.AssetIn()})
def no_slice_regression_vs_champion(
    project: ProjectResource, mlflow: MlflowResource, registered_model: str, model_evaluation: CandidateEvaluation
) -> dg.AssetCheckResult:
    """No slice of the holdout clearly worse than under the champion, by more than `gates.max_slice_regression`."""
    return _champion_gate("no_slice_regression_vs_champion", project, mlflow, registered_model, model_evaluation)


def _champion_gate(
    check: str,
    project: ProjectResource,
    mlflow: MlflowResource,
    registered_model: str,
    evaluation: CandidateEvaluation,
) -> dg.AssetCheckResult:
    """One of `gates.champion_verdicts` as a check result, also a `gate.<check>` tag on the version's page."""
    params = project.params()
    verdict = gates.champion_verdicts(evaluation, params.gates)[check]
    mlflow.client().set_model_version_tag(
        params.registry.model_name, registered_model, f"gate.{check}", gates.as_tag(verdict)
    )
    return dg.AssetCheckResult(
        passed=verdict.passed,
        metadata=verdict.metadata(),
        description=verdict.message
        if verdict.passed
        else f"v{registered_model}: {verdict.message}; it stays `challenger` and `champion` is unchanged",
    )


@dg.asset_check(
    asset=registered_model,
    blocking=True,
    additional_ins={"trained_model": dg.AssetIn("trained_model"), "dataset_split": dg.AssetIn("dataset_split")},
)
def serving_matches_training(
    project: ProjectResource,
    mlflow: MlflowResource,
    registered_model: str,
    trained_model: CandidateModel,
    dataset_split: features_lib.TrainingData,
) -> dg.AssetCheckResult:
    """Served through MLflow's pyfunc scoring path (JSON `dataframe_split`), it predicts exactly what was evaluated.

    No training-serving skew: the features a client's request becomes are computed by the same
    pipeline as in training, and nothing on the way (serialization, the signature's types, a
    custom pyfunc wrapper) changes an answer.
    """
    from ml_assets.lib import skew

    params = project.params()
    name = params.registry.model_name
    spec = dataset_split.spec
    rows = skew.skew_sample(
        dataset_split.split.test, features=spec.features, rows=params.evaluation.skew_rows, seed=params.split.seed
    )
    served = skew.load_served_model(mlflow.uri, f"models:/{name}/{registered_model}")
    report = skew.compare_served(
        served,
        trained_model.model,
        rows,
        features=spec.features,
        classes=list(trained_model.model.classes_),
        id_columns=params.data.id_columns,
    )
    message = report.message(f"`{name}` v{registered_model}")
    return dg.AssetCheckResult(
        passed=report.matches,
        metadata={
            "rows_compared": report.rows_compared,
            "rows_differing": report.rows_differing,
            "max_abs_difference": report.max_abs_difference,
            "served_model": report.served_object,
            "scoring_path": "mlflow.pyfunc.load_model + scoring_server.invocations (application/json dataframe_split)",
        },
        description=message if report.matches else f"{message}; `champion` is unchanged",
    )


@dg.asset_check(asset=registered_model, blocking=True)
def automation_may_promote(
    project: ProjectResource, mlflow: MlflowResource, registered_model: str
) -> dg.AssetCheckResult:
    """No person has pinned the champion, and this version was never rolled back."""
    from ml_assets.lib.promotion import refusal_for_automation

    client, name = mlflow.client(), project.params().registry.model_name
    refusal = refusal_for_automation(client, name, registered_model)
    client.set_model_version_tag(
        name, registered_model, "gate.automation_may_promote", f"FAILED: {refusal}"[:4000] if refusal else "passed"
    )
    return dg.AssetCheckResult(passed=refusal is None, description=refusal)


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    owners=OWNERS,
    code_version=CODE_VERSIONS["champion_model"],
    pool=WRITER_POOL,
    ins={"registered_model": dg.AssetIn(), "model_evaluation": dg.AssetIn()},
)
def champion_model(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    registered_model: str,
    model_evaluation: CandidateEvaluation,
) -> dg.Output[str]:
    """The production model: `champion`, moved to the challenger only if it still points where it was compared.

    The move is a compare-and-set in the one writer pool; the event is kept in `champion_history`.
    """
    from ml_assets.lib import promotion

    name = project.params().registry.model_name
    client = mlflow.client()
    expected = model_evaluation.comparison.champion_version
    if expected == registered_model:
        context.log.info(f"`{name}` v{registered_model} is already champion; nothing to move")
        return dg.Output(registered_model, metadata={"champion_version": int(registered_model), "promoted": False})
    difference = model_evaluation.comparison.difference
    try:
        event = promotion.move_champion(
            client,
            name,
            to_version=registered_model,
            expected=expected,
            action="promote",
            reason=model_evaluation.comparison.note,
            actor=f"automation:{context.run.tags.get('ml_assets/trigger', 'manual')}",
            run_id=context.run_id,
            now=datetime.now(UTC),
            automated=True,
            metrics={
                "holdout_roc_auc": model_evaluation.metrics.roc_auc,
                **(
                    {"champion_holdout_roc_auc": model_evaluation.champion.roc_auc} if model_evaluation.champion else {}
                ),
                **({"lead_lower_bound": difference.lower} if difference else {}),
            },
        )
    except promotion.PromotionRefused as refused:
        raise dg.Failure(description=str(refused)) from refused
    context.log.info(f"`{name}@champion`: v{event.previous or '-'} -> v{event.version}")
    return dg.Output(
        registered_model,
        metadata={
            "champion_version": int(registered_model),
            "replaced_version": int(event.previous) if event.previous else None,
            "promoted": True,
            "history_event": event.seq,
            "model_uri": f"models:/{name}@champion",
            "model_version": dg.MetadataValue.url(mlflow.version_url(name, registered_model)),
        },
    )


@dg.asset(
    deps=[champion_model],
    group_name="registry",
    kinds={"mlflow"},
    owners=OWNERS,
    code_version="1",
)
def champion_history(mlflow: MlflowResource, project: ProjectResource) -> dg.MaterializeResult:
    """Every promotion, approval, rollback and pin of `champion`, newest first, with each version's metrics.

    Read from the registry's own history tags, so `make run`, the sensors and people share one book.
    """
    return dg.MaterializeResult(metadata=history_metadata(mlflow, project.params().registry.model_name))


def history_metadata(mlflow: MlflowResource, name: str) -> dict[str, Any]:
    """The champion history table and the metric chart, as shown on `champion_history`."""
    from ml_assets.lib import plots, promotion, tracking

    client = mlflow.client()
    aliases = tracking.read_aliases(client, name)
    if not aliases and not tracking.model_exists(client, name):
        return {"events": 0, "champion": "none"}
    events = promotion.history(dict(client.get_registered_model(name).tags or {}))
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    metrics = ("roc_auc", "f1", "accuracy")
    chart = [
        {"version": f"v{v.version}", **{m: float(v.tags[f"test_{m}"]) for m in metrics if f"test_{m}" in v.tags}}
        for v in versions
    ]
    png = plots.metric_history_png(chart, metrics=metrics, title=f"`{name}`: holdout metrics by version")
    rows = promotion.history_records(events)
    return {
        "champion": f"v{aliases[tracking.CHAMPION]}" if tracking.CHAMPION in aliases else "none",
        "pinned": bool(promotion.current_pin(client, name)),
        "events": len(events),
        "history": dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows]),
        "metrics_by_version": dg.MetadataValue.md(plots.as_markdown_image(png, alt="metrics by version")),
    }
