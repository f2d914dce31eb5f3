import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import evaluation as E
from ml_assets.lib import gates as G


def test_metrics_on_a_perfect_and_a_useless_binary_model():
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    m = E.classification_metrics(y, perfect, classes=[0, 1])
    assert (m.accuracy, m.f1, m.roc_auc) == (1.0, 1.0, 1.0)
    assert m.confusion_matrix == ((2, 0), (0, 2))
    flat = E.classification_metrics(y, np.full((4, 2), 0.5), classes=[0, 1])
    assert flat.roc_auc == 0.5 and flat.log_loss == pytest.approx(np.log(2))
    assert m.get("neg_log_loss") == -m.log_loss


def test_multiclass_metrics():
    y = np.array(["a", "b", "c", "a"])
    proba = np.eye(3)[[0, 1, 2, 0]] * 0.9 + 0.1 / 3
    m = E.classification_metrics(y, proba, classes=["a", "b", "c"])
    assert m.accuracy == 1.0 and m.roc_auc == 1.0 and len(m.confusion_matrix) == 3


def test_rank_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + y * 0.3, 2)  # ties included
    assert E._binary_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_bootstrap_interval_brackets_a_real_difference_and_zero_for_equal_models():
    rng = np.random.default_rng(1)
    y = rng.random(800) < 0.3
    good = y * 1.0 + rng.normal(0, 0.6, 800)
    bad = y * 1.0 + rng.normal(0, 3.0, 800)
    better = E.bootstrap_auc_difference(y, good, bad, positive=True, samples=300, confidence=0.95, seed=0)
    assert better.lower > 0 and better.lower <= better.difference <= better.upper
    same = E.bootstrap_auc_difference(y, good, good, positive=True, samples=50, confidence=0.95, seed=0)
    assert same.lower == same.upper == same.difference == 0


def test_latency_and_shares():
    from sklearn.dummy import DummyClassifier

    x = pd.DataFrame({"a": range(10)})
    model = DummyClassifier().fit(x, [0] * 8 + [1] * 2)
    stats = E.measure_latency(model, x, samples=20)
    assert 0 < stats.p50_ms <= stats.p95_ms <= stats.max_ms
    assert E.prediction_shares([0, 0, 0, 1], classes=[0, 1, 2]) == {"0": 0.75, "1": 0.25, "2": 0.0}


@pytest.mark.parametrize(("value", "passed"), [(0.75, True), (0.70, True), (0.69, False)])
def test_minimum_gate(value, passed):
    verdict = G.meets_minimum("roc_auc", value, minimum=0.70)
    assert verdict.passed is passed
    assert verdict.metadata() == {"roc_auc": value, "min_roc_auc": 0.70}
    if not passed:
        assert "below the minimum 0.7000" in verdict.message and "-0.0100" in verdict.message


@pytest.mark.parametrize(("value", "passed"), [(0.56, True), (0.549, False)])
def test_baseline_gate(value, passed):
    assert G.beats_baseline("roc_auc", value, baseline=0.5, margin=0.05).passed is passed


def interval(lower: float) -> E.BootstrapInterval:
    return E.BootstrapInterval(
        "roc_auc", difference=lower + 0.01, lower=lower, upper=lower + 0.02, confidence=0.95, samples=100
    )


@pytest.mark.parametrize(("lower", "passed"), [(0.0, True), (-0.009, True), (-0.011, False), (-0.2, False)])
def test_regression_gate(lower, passed):
    assert G.no_regression(interval(lower), max_regression=0.01).passed is passed


def test_regression_gate_passes_without_champion():
    assert G.no_regression(None, max_regression=0.0).passed


def test_latency_null_and_class_gates():
    assert G.latency_within(4.0, max_p95_ms=5.0).passed and not G.latency_within(6.0, max_p95_ms=5.0).passed
    assert G.no_null_predictions(0, rows=10).passed and not G.no_null_predictions(1, rows=10).passed
    starved = G.predicts_every_class({"0": 0.995, "1": 0.005}, min_share=0.02)
    assert not starved.passed and "`1` 0.5%" in starved.message
    assert G.predicts_every_class({"0": 0.8, "1": 0.2}, min_share=0.02).passed


def test_evaluate_candidate_without_and_with_champion():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    df["y"] = (df["a"] + rng.normal(0, 0.5, 600) > 0.8).astype(int)
    train, holdout = df.iloc[:400], df.iloc[400:]
    model = LogisticRegression().fit(train[["a", "b"]], train["y"])
    weak = LogisticRegression().fit(train[["b"]].assign(a=0.0)[["a", "b"]], train["y"])
    common = dict(
        train=train,
        holdout=holdout,
        features=["a", "b"],
        target="y",
        bootstrap_samples=100,
        confidence=0.95,
        latency_samples=10,
        seed=0,
    )
    alone = E.evaluate_candidate(model, champion=None, champion_version=None, **common)
    assert alone.comparison is None and alone.baseline.roc_auc == 0.5 and alone.metrics.roc_auc > 0.85
    against = E.evaluate_candidate(model, champion=weak, champion_version="1", **common)
    assert against.comparison is not None and against.comparison.lower > 0
