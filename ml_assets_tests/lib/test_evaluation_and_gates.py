import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import evaluation as E
from ml_assets.lib import gates as G
from ml_assets.lib import paired_bootstrap as P


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


def test_paired_difference_matches_sklearn_and_brackets_a_real_lead():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(800) < 0.3).astype(int)
    good = y * 1.0 + rng.normal(0, 0.6, 800)
    bad = y * 1.0 + rng.normal(0, 3.0, 800)
    as_proba = lambda s: np.column_stack([1 - s, s])  # noqa: E731
    lead = P.paired_auc_difference(
        y, as_proba(good), as_proba(bad), classes=[0, 1], samples=300, confidence=0.95, seed=0
    )
    assert lead.difference == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad))
    assert 0 < lead.lower < lead.difference and lead.standard_error > 0
    same = P.paired_auc_difference(
        y, as_proba(good), as_proba(good), classes=[0, 1], samples=50, confidence=0.95, seed=0
    )
    assert same.difference == same.lower == 0


def test_multiclass_difference_is_the_one_vs_rest_macro_auc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 600)
    strong = np.eye(3)[y] * 2 + rng.normal(0, 1, (600, 3))
    weak = np.eye(3)[y] * 0.3 + rng.normal(0, 1, (600, 3))
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    lead = P.paired_auc_difference(
        y, softmax(weak), softmax(strong), classes=[0, 1, 2], samples=200, confidence=0.95, seed=0
    )
    expected = roc_auc_score(y, softmax(weak), multi_class="ovr") - roc_auc_score(y, softmax(strong), multi_class="ovr")
    assert lead.difference == pytest.approx(expected) and lead.lower < -0.1


class _Sleepy:
    """A model whose call waits (as a descheduled process would) but does no work."""

    classes_ = np.array([0, 1])

    def predict_proba(self, rows):
        import time

        time.sleep(0.005)
        return np.tile([0.5, 0.5], (len(rows), 1))


def test_latency_gate_counts_cpu_time_not_waiting():
    x = pd.DataFrame({"a": range(10)})
    stats = E.measure_latency(_Sleepy(), x, samples=20)
    assert stats.p50_ms >= 5  # the wall clock saw the wait ...
    assert stats.cpu_ms_per_row < 1  # ... the gated CPU figure did not: a busy machine gives the same verdict
    assert G.latency_within(stats.cpu_ms_per_row, max_cpu_ms=1.0).passed


def test_shares():
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


def compared(lower: float, *, error: float = 0.005, rows: int = 960) -> E.ChampionComparison:
    difference = P.PairedDifference(
        "roc_auc", difference=lower + 0.01, lower=lower, standard_error=error, confidence=0.95, samples=100, rows=rows
    )
    return E.ChampionComparison("1", difference=difference)


@pytest.mark.parametrize(("lower", "passed"), [(0.0, True), (-0.024, True), (-0.026, False), (-0.2, False)])
def test_non_inferiority_gate(lower, passed):
    verdict = G.non_inferior(compared(lower), margin=0.025, min_power=0.9)
    assert verdict.passed is passed and "vs champion v1" in verdict.message
    assert "too small" not in verdict.message  # a standard error of 0.005 gives power 1.0


def test_non_inferiority_says_when_the_holdout_is_too_small():
    verdict = G.non_inferior(compared(-0.03, error=0.02, rows=200), margin=0.025, min_power=0.9)
    assert not verdict.passed
    assert (
        "holdout is too small to decide: with 200 rows" in verdict.message and "approve_challenger" in verdict.message
    )
    assert verdict.observed["power_if_equal"] < 0.9


def test_non_inferiority_without_champion_and_when_comparison_is_blocked():
    assert G.non_inferior(E.ChampionComparison(None), margin=0.0, min_power=0.9).passed
    blocked = G.non_inferior(E.ChampionComparison("3", blocker="the classes changed"), margin=0.1, min_power=0.9)
    assert not blocked.passed
    assert "cannot compare with champion v3: the classes changed" in blocked.message
    assert "registered as `challenger`" in blocked.message and "approve_challenger" in blocked.message


def test_latency_null_and_class_gates():
    assert G.latency_within(4.0, max_cpu_ms=5.0).passed and not G.latency_within(6.0, max_cpu_ms=5.0).passed
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
    assert alone.comparison.champion_version is None and alone.comparison.difference is None
    assert alone.baseline.roc_auc == 0.5 and alone.metrics.roc_auc > 0.85
    against = E.evaluate_candidate(model, champion=weak, champion_version="1", **common)
    assert against.comparison.difference is not None and against.comparison.difference.lower > 0

    # a champion that cannot score the holdout (another schema) blocks the comparison instead of passing it
    narrow = LogisticRegression().fit(train[["a"]].rename(columns={"a": "gone"}), train["y"])
    blocked = E.evaluate_candidate(model, champion=narrow, champion_version="2", **common)
    assert blocked.comparison.difference is None and "cannot score the current holdout" in blocked.comparison.blocker

    # other classes: no like-for-like comparison
    three = LogisticRegression().fit(train[["a", "b"]], (train["a"] > 0).astype(int) + (train["b"] > 0).astype(int))
    changed = E.evaluate_candidate(model, champion=three, champion_version="3", **common)
    assert "the classes changed" in changed.comparison.blocker

    unloadable = E.evaluate_candidate(model, champion=None, champion_version="4", champion_blocker="gone", **common)
    assert unloadable.comparison.blocker == "gone"
