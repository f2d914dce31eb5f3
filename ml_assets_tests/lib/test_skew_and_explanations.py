from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import evaluation as E
from ml_assets.lib import gates as G
from ml_assets.lib import model_card, skew
from ml_assets.lib.explanations import explain_globally
from ml_assets.lib.features import FeatureSpec, fit_preprocessor
from ml_assets.lib.slices import SliceOptions
from ml_assets_tests.lib.skewed_pyfunc import log_skewed_copy

SPEC = FeatureSpec(numeric=("charges", "noise", "tenure"), categorical=("plan",), target="y")


def frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": [f"C{i:04d}" for i in range(n)],
            "charges": rng.normal(70, 20, n).round(2),
            "noise": rng.normal(size=n),
            "tenure": rng.integers(0, 72, n),
            "plan": rng.choice(["basic", "gold", None], n, p=[0.6, 0.35, 0.05]),
        }
    )
    df.loc[rng.random(n) < 0.05, "charges"] = np.nan
    logit = 0.06 * (df["charges"].fillna(70) - 70) - 0.03 * df["tenure"] + (df["plan"] == "basic") * 0.8
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@pytest.fixture(scope="module")
def pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    train = frame()
    pre = fit_preprocessor(train, SPEC)
    model = LogisticRegression().fit(pre.transform(train[list(SPEC.features)]), train["y"])
    return Pipeline([("preprocess", pre), ("model", model)])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> str:
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copy(mlflow_template, path)
    return f"sqlite:///{path}"


def test_the_logged_pipeline_served_through_mlflow_predicts_exactly_the_offline_probabilities(pipeline, store):
    from mlflow import MlflowClient

    from ml_assets.lib import tracking

    client = MlflowClient(store)
    experiment = tracking.ensure_experiment(client, "skew", artifact_root=None)
    holdout = frame(seed=1)
    logged = tracking.log_sklearn_model(
        tracking_uri=store,
        experiment_id=experiment,
        run_name="plain",
        model=pipeline,
        params={},
        metrics={},
        tags={},
        input_example=holdout[list(SPEC.features)].head(5),
    )
    served = skew.load_served_model(store, logged.model_uri)
    rows = skew.skew_sample(holdout, features=SPEC.features, rows=200, seed=0)
    assert len(rows) == 200 and rows[list(SPEC.features)].isna().any(axis=1).sum() >= 30  # missing values included
    report = skew.compare_served(served, pipeline, rows, features=SPEC.features, classes=[0, 1], id_columns=["id"])
    assert report.matches and report.rows_compared == 200 and report.max_abs_difference == 0.0
    assert report.served_object == "Pipeline(preprocess: ColumnTransformer, model: LogisticRegression)"


def test_a_served_wrapper_that_rescales_one_column_is_caught_naming_rows_and_outputs(pipeline, store):
    holdout = frame(seed=2)
    uri = log_skewed_copy(store, pipeline, example=holdout[list(SPEC.features)].head(5), column="charges", factor=1.1)
    served = skew.load_served_model(store, uri)
    rows = skew.skew_sample(holdout, features=SPEC.features, rows=100, seed=0)
    report = skew.compare_served(served, pipeline, rows, features=SPEC.features, classes=[0, 1], id_columns=["id"])
    assert not report.matches
    changed = rows["charges"].notna().sum()  # a missing charge is imputed after the wrapper: no difference there
    assert report.rows_differing == changed and report.output_columns == ("0", "1")
    message = report.message("`churn` v3")
    assert message.startswith(
        f"`churn` v3 served through MLflow's scoring path differs from the offline predictions on {changed} of 100"
    )
    first = rows[rows["charges"].notna()].iloc[0]
    assert f"id={first['id']}: `0` " in message and "output column(s) `0`, `1`" in message
    assert report.served_object == "pyfunc built by `ml_assets_tests.lib.skewed_pyfunc`"
    assert not report.explained_by_casts and "the served model computes something else" in message
    # the sklearn flavor of the same version is intact: only the serving path shows the skew
    import mlflow.sklearn

    reloaded = mlflow.sklearn.load_model(uri)
    assert np.array_equal(
        reloaded.predict_proba(rows[list(SPEC.features)]), pipeline.predict_proba(rows[list(SPEC.features)])
    )


def test_an_integer_code_used_as_a_category_is_skewed_by_the_serving_signature_and_the_check_says_so(store):
    """The signature types integer columns as doubles (a missing value must fit): `3` is served as `3.0`."""
    from mlflow import MlflowClient
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from ml_assets.lib import tracking

    df = frame(seed=7).assign(code=lambda d: d["tenure"] % 4)
    as_words = FunctionTransformer(lambda x: x.astype(str))
    encode = make_column_transformer(
        (make_pipeline(as_words, OneHotEncoder(handle_unknown="ignore")), ["code"]), remainder="drop"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(df[["code", "charges"]], df["y"])
    experiment = tracking.ensure_experiment(MlflowClient(store), "skew", artifact_root=None)
    logged = tracking.log_sklearn_model(
        tracking_uri=store,
        experiment_id=experiment,
        run_name="coded",
        model=model,
        params={},
        metrics={},
        tags={},
        input_example=df[["code", "charges"]].head(5),
    )
    served = skew.load_served_model(store, logged.model_uri)
    report = skew.compare_served(served, model, df.head(50), features=["code", "charges"], classes=[0, 1])
    assert not report.matches and report.explained_by_casts and report.cast_columns == ("`code` int64 -> double",)
    assert "the cause: the served signature casts `code` int64 -> double" in report.message("v1")


def test_a_request_the_scoring_server_rejects_is_a_failure_with_its_reason(pipeline, store):
    from mlflow import MlflowClient

    from ml_assets.lib import tracking

    holdout = frame(seed=3)
    experiment = tracking.ensure_experiment(MlflowClient(store), "skew", artifact_root=None)
    logged = tracking.log_sklearn_model(  # its signature demands a column the features do not include
        tracking_uri=store,
        experiment_id=experiment,
        run_name="demanding",
        model=pipeline,
        params={},
        metrics={},
        tags={},
        input_example=holdout[[*SPEC.features, "id"]].head(5),
    )
    served = skew.load_served_model(store, logged.model_uri)
    report = skew.compare_served(served, pipeline, holdout.head(20), features=SPEC.features, classes=[0, 1])
    assert not report.matches and "id" in str(report.error)
    assert report.message("v1").startswith("v1 through MLflow's scoring path: MlflowException")


def test_permutation_importance_ranks_the_informative_columns_first_on_a_bounded_sample(pipeline):
    holdout = frame(n=1500, seed=4)
    explanation = explain_globally(
        pipeline, holdout, features=SPEC.features, target="y", max_rows=500, repeats=3, seed=0
    )
    ranked = [i.feature for i in explanation.importances]
    assert ranked[-1] == "noise" and set(ranked[:2]) == {"charges", "tenure"}
    assert explanation.rows == 500 and explanation.scoring == "roc_auc"
    assert json.loads(json.dumps(explanation.as_dict()))["importances"][0]["feature"] == ranked[0]


def test_the_model_card_has_data_metrics_slices_gates_and_explanations(pipeline, tmp_path: Path):
    from mlflow import MlflowClient

    from ml_assets.lib.config import GateParams
    from ml_assets.lib.evaluation_params import SliceSpec

    train, holdout = frame(seed=5), frame(seed=6)
    evaluation = E.evaluate_candidate(
        pipeline,
        train=train,
        holdout=holdout,
        features=SPEC.features,
        target="y",
        champion=None,
        champion_version=None,
        bootstrap_samples=50,
        confidence=0.95,
        latency_samples=5,
        seed=0,
        slicing=SliceOptions(features=("plan",), configured=(SliceSpec("long_tenure", "tenure >= 36"),)),
        explanation_rows=300,
        explanation_repeats=2,
    )
    assert evaluation.slices is not None and evaluation.explanation is not None
    limits = GateParams(0.6, 0.2, 0.05, 0.025, 0.95, 0.9, 50, 25.0, 5, 0.02, min_slice_roc_auc=0.55)
    verdicts = {**G.model_verdicts(evaluation, limits), **G.champion_verdicts(evaluation, limits)}
    facts = model_card.CardFacts(
        model_name="churn",
        version="7",
        candidate="logistic_regression",
        model=skew.describe_model(pipeline),
        run_id="abc",
        snapshot_md5="snap123",
        holdout_md5="hold456",
        split_rows={"train": 360, "validation": 120, "test": 120},
        numeric=SPEC.numeric,
        categorical=SPEC.categorical,
        target="y",
        code_version="1",
        params_hash="p1",
        git_commit="deadbeef",
        intended_use="Rank customers by churn risk.",
        limitations="Not for pricing.",
    )
    card = model_card.render_model_card(
        facts,
        evaluation,
        verdicts=verdicts,
        checked_after_registration=["serving_matches_training"],
        importance_image=None,
    )
    for expected in (
        "# Model card: `churn` v7",
        "Rank customers by churn risk.",
        "Not for pricing.",
        "| training snapshot | snap123 | 600 |",
        "| holdout (test part) | hold456 | 120 |",
        f"| roc_auc | {evaluation.metrics.roc_auc:.4f} | 0.5000 | - |",
        "| plan=basic |",
        "| long_tenure |",
        "| slices_meet_min_roc_auc | passed |",
        "| no_regression_vs_champion | passed | no champion yet",
        "| serving_matches_training | after registration |",
        f"| {evaluation.explanation.importances[0].feature} | ",
    ):
        assert expected in card, expected
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("cards", artifact_location=str(tmp_path / "artifacts")))
    written = model_card.log_card_artifacts(
        client, run.info.run_id, card=card, explanation=evaluation.explanation.as_dict(), importance_png=b"\x89PNG"
    )
    listed = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "explanations")
    }
    assert (
        set(written)
        <= listed
        == {"model_card.md", "explanations.json", "explanations", "explanations/feature_importance.png"}
    )
