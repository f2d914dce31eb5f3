"""Slices, model cards and training-serving skew on the real graph, with `dagster.materialize`."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from ml_assets.lib import tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_fail_closed import aliases, retrain_with_new_setup
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.graph import failed_checks, materialized, train
from ml_assets_tests.lib.skewed_pyfunc import log_skewed_copy

HOLDOUT = "data/holdout/holdout.parquet"


def latest_metadata(project: Project, asset: str) -> dict:
    event = project.instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_a_registered_version_carries_its_model_card_explanations_and_slices(trained: Project):
    evaluation = latest_metadata(trained, "model_evaluation")
    table = {r.data["slice"]: r.data for r in evaluation["slices"].records}
    assert {"region=north", "contract=month_to_month", "seniors"} <= set(table)
    assert evaluation["slices_judged"] + evaluation["slices_not_judged"] == len(table)
    assert any(r["note"].startswith("not judged (") for r in table.values())  # the demo has small slices

    registered = latest_metadata(trained, "registered_model")
    card = registered["model_card"]
    for section in ("# Model card: `churn_classifier` v1", "## Intended use", "## Metrics by slice", "## Gates"):
        assert section in card, section
    assert registered["model_card_artifact"].endswith("/artifacts/model_card.md")

    client = trained.mlflow_client()
    run_id = client.get_model_version(MODEL, "1").run_id
    assert {"model_card.md", "explanations.json"} <= {a.path for a in client.list_artifacts(run_id)}
    explanation = json.loads(Path(client.download_artifacts(run_id, "explanations.json")).read_text())
    assert explanation["method"] == "permutation_importance" and explanation["version"] == "1"
    assert 0 < explanation["rows"] <= 500 and len(explanation["importances"]) == 9  # one per input column
    assert registered["top_features"].split(", ")[0] == explanation["importances"][0]["feature"]


def test_a_candidate_better_overall_but_worse_on_one_slice_stays_challenger(trained: Project):
    specialist = install_slice_specialist(trained, column="contract", value="month_to_month")
    result = retrain_with_new_setup(trained)
    failed = failed_checks(result)
    assert set(failed) == {"no_slice_regression_vs_champion"}, failed
    message = failed["no_slice_regression_vs_champion"]
    assert f"regress against champion v{specialist} by more than 0.0500" in message
    assert "`contract=month_to_month`" in message and "`champion` is unchanged" in message
    [overall] = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_regression_vs_champion"]
    assert overall.passed and overall.metadata["difference"].value > 0  # better overall, and shown not worse
    assert "champion_model" not in materialized(result)
    now = aliases(trained)
    assert now[tracking.CHAMPION] == specialist and now[tracking.CHALLENGER] not in {specialist, "1"}


def test_the_skew_check_catches_a_serving_wrapper_that_rescales_a_column(trained: Project):
    skewed = register_skewed_copy_of_v1(trained, column="monthly_charges", factor=1.1)
    result = train(trained)  # same data and params: the candidates are reused and v1's setup maps to `skewed`
    failed = failed_checks(result)
    assert set(failed) == {"serving_matches_training"}, failed
    message = failed["serving_matches_training"]
    assert message.startswith(f"`{MODEL}` v{skewed} served through MLflow's scoring path differs from the offline")
    assert "in output column(s) `0`, `1`" in message and "Rows: customer_id=" in message
    assert "the served model computes something else" in message and "`champion` is unchanged" in message
    assert aliases(trained)[tracking.CHAMPION] == "1" and aliases(trained)[tracking.CHALLENGER] == skewed


class SliceSpecialist(ClassifierMixin, BaseEstimator):
    """A champion that knows the holdout labels of one slice and guesses elsewhere (an id hash)."""

    def __init__(self, labels: dict[str, int] | None = None, column: str = "", value: str = ""):
        self.labels, self.column, self.value = labels, column, value
        self.classes_ = np.array([0, 1])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        guess = (pd.util.hash_pandas_object(x["customer_id"], index=False).to_numpy() % 10_000) / 10_000
        known = x["customer_id"].map(self.labels or {}).to_numpy(dtype=float)
        p = np.where((x[self.column] == self.value).to_numpy(), 0.45 + 0.1 * known, guess)  # ranked right, mid-range
        return np.column_stack([1 - p, p])


def install_slice_specialist(project: Project, *, column: str, value: str) -> str:
    """Registers a `SliceSpecialist` for `column == value` and makes it the champion; returns its version."""
    import mlflow
    import mlflow.sklearn

    holdout = pd.read_parquet(project.root / HOLDOUT)
    inside = holdout[holdout[column] == value]
    model = SliceSpecialist(dict(zip(inside["customer_id"], inside["churned"], strict=True)), column, value)
    mlflow.set_tracking_uri(project.tracking_uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    client = project.mlflow_client()
    version = client.create_model_version(MODEL, source=info.model_uri, run_id=info.run_id, model_id=info.model_id)
    client.set_registered_model_alias(MODEL, tracking.CHAMPION, str(version.version))
    return str(version.version)


def register_skewed_copy_of_v1(project: Project, *, column: str, factor: float) -> str:
    """Registers v1's pipeline again with a pyfunc flavor that rescales `column`, under v1's training fingerprint.

    As if someone had wrapped the model for serving by hand: the sklearn flavor (what batch scoring
    and `loads_from_registry_and_matches` load) is intact, only the served path differs.
    """
    client = project.mlflow_client()
    v1 = client.get_model_version(MODEL, "1")
    model = tracking.load_model(project.tracking_uri, f"models:/{MODEL}/1")
    example = pd.read_parquet(project.root / HOLDOUT)[list(model.feature_names_in_)].head(5)
    uri = log_skewed_copy(project.tracking_uri, model, example=example, column=column, factor=factor)
    version = client.create_model_version(
        MODEL, source=uri, run_id=uri.split("/")[1], tags={tracking.FINGERPRINT_TAG: v1.tags[tracking.FINGERPRINT_TAG]}
    )
    return str(version.version)
