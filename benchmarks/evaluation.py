"""What slices, explanations and the serving-skew check add to a model's evaluation, at the demo's size.

Each figure sits beside its baseline measured in the same run: `evaluate_candidate` without and with
slices and permutation importances; the permutation importance `model_evaluation` used to plot
(whole holdout, 3 repeats) beside the one now computed (`evaluation.explanation_rows` rows per
shuffle, `explanation_repeats` repeats); the skew comparison (`evaluation.skew_rows` rows through
MLflow's scoring path) beside one offline `predict_proba` of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.measure import Figure, Section, time_calls

REPO = Path(__file__).resolve().parents[1]


def bench_evaluation(base: Path, *, say: Callable[[str], None]) -> Section:
    """Times the evaluation extras on the demo's data (4 x 1,200 rows, 960 holdout rows)."""
    from ml_assets.lib import skew, tracking
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import generate_batch
    from ml_assets.lib.evaluation import evaluate_candidate
    from ml_assets.lib.explanations import explain_globally
    from ml_assets.lib.features import fit_preprocessor, infer_feature_spec, split_dataset
    from ml_assets.lib.slices import SliceOptions
    from ml_assets.lib.training import train_candidate

    params = load_params(REPO / "params.yaml")
    say("evaluation: generating the demo data and training two candidates")
    frames = [generate_batch(n_rows=1200, seed=7, batch_date=dt.date(2026, 11, 1 + i)) for i in range(4)]
    data = pd.concat(frames, ignore_index=True)
    spec = infer_feature_spec(data, target=params.data.target, id_columns=params.data.id_columns)
    split = split_dataset(
        data,
        target=spec.target,
        test_size=params.split.test_size,
        validation_size=params.split.validation_size,
        seed=params.split.seed,
        id_columns=params.data.id_columns,
    )
    pre = fit_preprocessor(split.train, spec)
    model = train_candidate(
        split.train,
        preprocessor=pre,
        spec=params.training.candidate("hist_gradient_boosting"),
        features=spec,
        seed=params.split.seed,
    )
    champion = train_candidate(
        split.train,
        preprocessor=pre,
        spec=params.training.candidate("logistic_regression"),
        features=spec,
        seed=params.split.seed,
    )
    e, g = params.evaluation, params.gates
    common: dict[str, Any] = dict(
        train=split.train,
        holdout=split.test,
        features=spec.features,
        target=spec.target,
        champion=champion,
        champion_version="1",
        bootstrap_samples=g.bootstrap_samples,
        confidence=g.confidence,
        latency_samples=g.latency_samples,
        seed=params.split.seed,
    )
    slicing = SliceOptions(
        features=spec.categorical,
        configured=e.slices,
        max_values_per_feature=e.max_values_per_feature,
        min_rows=e.min_slice_rows,
        min_class_rows=e.min_slice_class_rows,
    )
    section = Section(f"Evaluation extras (HistGradientBoosting, {len(split.test)} holdout rows, params.yaml)")
    say("evaluation: evaluate_candidate without and with slices and importances, x 3 each")
    plain, _ = time_calls(lambda: evaluate_candidate(model, **common), repeat=3, warmup=1)
    full, result = time_calls(
        lambda: evaluate_candidate(
            model,
            **common,
            slicing=slicing,
            explanation_rows=e.explanation_rows,
            explanation_repeats=e.explanation_repeats,
        ),
        repeat=3,
    )
    judged = len(result.slices.judged)
    section.figures += [
        Figure("evaluate_candidate, as before (metrics, baseline, champion, latency)", plain, note="baseline"),
        Figure(
            "evaluate_candidate with slices and permutation importances",
            full,
            note=f"{len(result.slices.slices)} slices ({judged} judged, each with a paired bootstrap vs the champion)",
        ),
    ]
    say("evaluation: permutation importances, before and now, x 3 each")
    old, _ = time_calls(  # the whole holdout, 3 repeats: what `model_evaluation` plotted before
        lambda: explain_globally(
            model,
            split.test,
            features=spec.features,
            target=spec.target,
            max_rows=len(split.test),
            repeats=3,
            seed=0,
        ),
        repeat=3,
    )
    new, _ = time_calls(
        lambda: explain_globally(
            model,
            split.test,
            features=spec.features,
            target=spec.target,
            max_rows=e.explanation_rows,
            repeats=e.explanation_repeats,
            seed=0,
        ),
        repeat=3,
    )
    section.figures += [
        Figure(f"permutation importance as plotted before ({len(split.test)} rows, 3 repeats)", old, note="baseline"),
        Figure(f"explain_globally (<= {e.explanation_rows} rows, {e.explanation_repeats} repeats)", new),
    ]
    say("evaluation: the serving-skew comparison, x 3")
    uri = f"sqlite:///{base / 'evaluation_mlflow.db'}"
    from mlflow import MlflowClient

    experiment = tracking.ensure_experiment(MlflowClient(uri), "bench", artifact_root=str(base / "evaluation_art"))
    logged = tracking.log_sklearn_model(
        tracking_uri=uri,
        experiment_id=experiment,
        run_name="bench",
        model=model,
        params={},
        metrics={},
        tags={},
        input_example=split.train[list(spec.features)].head(5),
    )
    served = skew.load_served_model(uri, logged.model_uri)
    rows = skew.skew_sample(split.test, features=spec.features, rows=e.skew_rows, seed=0)
    offline, _ = time_calls(lambda: model.predict_proba(rows[list(spec.features)]), repeat=3, warmup=1)
    compared, report = time_calls(
        lambda: skew.compare_served(served, model, rows, features=spec.features, classes=list(model.classes_)),
        repeat=3,
        warmup=1,
    )
    section.figures += [
        Figure(f"offline predict_proba of {len(rows)} holdout rows", offline, note="baseline"),
        Figure(
            f"compare_served: {len(rows)} rows as JSON through MLflow's scoring path",
            compared,
            note=f"matches exactly: {report.matches} (model already loaded)",
        ),
    ]
    return section
