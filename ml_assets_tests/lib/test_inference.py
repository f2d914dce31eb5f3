"""Batch inference on a tiny fitted model: the predictions frame, its summary, and where it is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_assets.lib.inference import model_features, predict_frame, predictions_path, summarize_predictions


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] + 0.3 * rng.normal(size=200) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


@pytest.fixture
def batch() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c3", "c1", "c2", "c4"],
            "b": [0.0, 0.1, -0.2, 0.0],  # columns in another order than at fit time
            "a": [3.0, -3.0, 0.5, -0.5],
            "churned": [1, 0, 1, 0],  # the target rides along and is ignored
        },
        index=[10, 11, 12, 13],
    )


def test_predict_frame_keeps_ids_and_order_and_adds_scores(model, batch):
    out = predict_frame(model, batch, id_columns=["customer_id", "not_there"], model_version="3")
    assert list(out.columns) == ["customer_id", "predicted_class", "proba_0", "proba_1", "model_version"]
    assert out["customer_id"].tolist() == ["c3", "c1", "c2", "c4"]
    assert out.index.tolist() == [0, 1, 2, 3]
    assert out["predicted_class"].tolist() == [1, 0, 1, 0]
    assert np.allclose(out["proba_0"] + out["proba_1"], 1.0)
    expected = model.predict_proba(batch[["a", "b"]])
    assert np.allclose(out[["proba_0", "proba_1"]].to_numpy(), expected)
    assert out["model_version"].tolist() == [3, 3, 3, 3] and out["model_version"].dtype == "int64"
    assert out["predicted_class"].dtype == np.asarray(model.classes_).dtype


def test_predict_frame_refuses_a_frame_without_the_model_inputs(model, batch):
    with pytest.raises(ValueError, match="`a`"):
        predict_frame(model, batch.drop(columns=["a"]), id_columns=["customer_id"], model_version=1)


def test_predict_frame_refuses_an_id_column_named_like_an_output(model, batch):
    with pytest.raises(ValueError, match="`predicted_class`"):
        predict_frame(
            model, batch.assign(predicted_class=1), id_columns=["customer_id", "predicted_class"], model_version=1
        )


def test_model_features_needs_a_model_fit_on_a_frame(batch):
    bare = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    with pytest.raises(ValueError, match="feature_names_in_"):
        model_features(bare, batch)


def test_predict_frame_on_an_empty_frame(model, batch):
    out = predict_frame(model, batch.iloc[0:0], id_columns=["customer_id"], model_version=1)
    assert out.empty and {"predicted_class", "proba_0", "proba_1", "model_version"} <= set(out.columns)
    summary = summarize_predictions(out)
    assert summary.rows == 0 and summary.class_shares == {} and np.isnan(summary.quantiles["p50"])


def test_summarize_predictions():
    predictions = pd.DataFrame(
        {
            "predicted_class": ["no", "no", "no", "yes"],
            "proba_no": [0.9, 0.8, 0.6, 0.0],
            "proba_yes": [0.1, 0.2, 0.4, 1.0],
        }
    )
    summary = summarize_predictions(predictions, quantiles=(0.0, 0.5, 1.0))
    assert summary.rows == 4
    assert summary.positive_class == "yes"
    assert summary.quantiles == {"p00": 0.1, "p50": 0.3, "p100": 1.0}
    assert summary.mean_probability == pytest.approx(0.425)
    assert summary.class_shares == {"no": 0.75, "yes": 0.25}
    assert summary.as_dict()["quantiles"] == summary.quantiles


def test_summarize_predictions_default_quantiles_are_ordered(model, batch):
    summary = summarize_predictions(predict_frame(model, batch, id_columns=[], model_version=1))
    assert list(summary.quantiles) == ["p05", "p25", "p50", "p75", "p95"]
    values = list(summary.quantiles.values())
    assert values == sorted(values) and 0.0 <= values[0] <= values[-1] <= 1.0
    assert sum(summary.class_shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("frame", "quantiles", "message"),
    [
        (pd.DataFrame({"predicted_class": [1]}), (0.5,), "proba_"),
        (pd.DataFrame({"predicted_class": [1], "proba_1": [0.3]}), (1.5,), r"\[0, 1\]"),
    ],
)
def test_summarize_predictions_rejects_bad_input(frame, quantiles, message):
    with pytest.raises(ValueError, match=message):
        summarize_predictions(frame, quantiles=quantiles)


def test_predictions_path_carries_the_version():
    folder = Path("/p")
    assert predictions_path(folder, "batch_1.csv", version="2") == folder / "batch_1.csv.v2.parquet"
    assert predictions_path(folder, "batch_1.csv", version=2) != predictions_path(folder, "batch_1.csv", version=3)
