"""Unit tests of `ml_assets.lib.retrain`: triggers, priority, cooldown, a degradation on the books, rollback rigour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml_assets.lib.drift import DriftReport, FeatureDrift
from ml_assets.lib.retrain import (
    Degradation,
    RetrainDecision,
    RetrainReason,
    decide_retrain,
    decide_rollback,
    decide_scheduled_retrain,
    evaluate_live_performance,
)

NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(hours=24)
RETRY = timedelta(minutes=60)


def _report(status: str) -> DriftReport:
    drifted = status == "drift"
    features = (
        ()
        if status == "insufficient_data"
        else (
            FeatureDrift(
                feature="tenure",
                kind="numeric",
                test="kolmogorov_smirnov",
                statistic=0.4 if drifted else 0.01,
                p_value=1e-30 if drifted else 0.8,
                adjusted_p_value=1e-29 if drifted else 0.9,
                psi=0.6 if drifted else 0.01,
                drifted=drifted,
            ),
        )
    )
    return DriftReport(
        status=status,  # type: ignore[arg-type]
        drifted=drifted,
        features=features,
        n_reference=5_000,
        n_current=57 if status == "insufficient_data" else 1_000,
        alpha=0.05,
        psi_threshold=0.2,
        correction="benjamini_hochberg",
        min_samples=200,
    )


DRIFT = _report("drift")
NO_DRIFT = _report("no_drift")
INSUFFICIENT = _report("insufficient_data")
DEGRADED = Degradation(champion_version="2", detail="live roc_auc 0.640 is below the minimum 0.700", since=NOW)


def _decide(**overrides) -> RetrainDecision:
    facts = {
        "validated_rows_since_champion": 312,
        "min_new_rows": 1_000,
        "drift": NO_DRIFT,
        "last_drift_retrain_at": None,
        "drift_cooldown": COOLDOWN,
        "now": NOW,
        "degradation": None,
        "performance_retry": RETRY,
        "champion_exists": True,
        **overrides,
    }
    return decide_retrain(**facts)


class _Fixed:
    """A 'model' whose probabilities are given: live scoring without training anything."""

    classes_ = np.array([0, 1])

    def __init__(self, positive: np.ndarray):
        self.positive = positive

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - self.positive, self.positive])


def test_live_performance_against_the_minimum():
    y = np.array([0, 0, 1, 1] * 25)
    rows = pd.DataFrame({"x": range(100), "y": y})
    good = evaluate_live_performance(_Fixed(y * 0.8 + 0.1), rows, target="y", metric="roc_auc", threshold=0.7)
    assert not good.degraded and good.champion_score == 1.0 and "meets the minimum 0.700" in good.detail
    flipped = evaluate_live_performance(_Fixed(0.9 - y * 0.8), rows, target="y", metric="roc_auc", threshold=0.7)
    assert flipped.degraded and flipped.detail == "live roc_auc 0.000 on 100 rows is below the minimum 0.700"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"champion_exists": False}, RetrainReason.NEW_DATA),
        ({"degradation": DEGRADED}, RetrainReason.PERFORMANCE),
        ({"drift": DRIFT}, RetrainReason.DRIFT),
        ({"validated_rows_since_champion": 1_000}, RetrainReason.ENOUGH_DATA),
        ({"champion_exists": False, "degradation": DEGRADED, "drift": DRIFT}, RetrainReason.NEW_DATA),
        ({"degradation": DEGRADED, "drift": DRIFT, "validated_rows_since_champion": 5_000}, RetrainReason.PERFORMANCE),
        ({"drift": DRIFT, "validated_rows_since_champion": 5_000}, RetrainReason.DRIFT),
    ],
)
def test_each_trigger_and_the_priority(overrides: dict, reason: RetrainReason) -> None:
    decision = _decide(**overrides)
    assert decision.retrain and decision.reason is reason and decision.detail


def test_nothing_new_means_no_retrain_and_says_why() -> None:
    assert _decide() == RetrainDecision(
        False, None, "312 new validated rows since the champion (threshold 1000); no drift"
    )
    assert "drift not assessed (insufficient data: 57 current" in _decide(drift=INSUFFICIENT).detail
    assert _decide(drift=None).detail.endswith("no drift report")
    assert "no validated rows" in _decide(champion_exists=False, validated_rows_since_champion=0).detail


def test_a_degradation_stays_on_the_books_and_is_retried_with_backoff_on_new_data() -> None:
    tried = Degradation("2", DEGRADED.detail, since=NOW, attempts=1, last_attempt_at=NOW)
    waiting = _decide(degradation=tried, now=NOW + timedelta(hours=5))
    assert not waiting.retrain  # no new data since the failed retrain: nothing to learn from
    assert "1 retrain(s) did not replace it" in waiting.detail and "approve a challenger" in waiting.detail
    fresh = Degradation("2", DEGRADED.detail, since=NOW, attempts=1, last_attempt_at=NOW, rows_since_attempt=400)
    assert not _decide(degradation=fresh, now=NOW + timedelta(minutes=59)).retrain  # backoff: 60 min
    retry = _decide(degradation=fresh, now=NOW + timedelta(minutes=60))
    assert retry.reason is RetrainReason.PERFORMANCE and "retry 2 on 400 new rows" in retry.detail
    third = Degradation("2", "x", since=NOW, attempts=3, last_attempt_at=NOW, rows_since_attempt=1)
    assert third.next_attempt_at(base=RETRY) == NOW + timedelta(hours=4)  # doubles per attempt
    assert not _decide(degradation=third, now=NOW + timedelta(hours=3)).retrain


@pytest.mark.parametrize(
    ("since_last", "retrain"),
    [(timedelta(hours=1), False), (timedelta(hours=23, minutes=59), False), (timedelta(hours=24), True)],
)
def test_drift_respects_the_cooldown(since_last: timedelta, retrain: bool) -> None:
    decision = _decide(drift=DRIFT, last_drift_retrain_at=NOW - since_last)
    assert decision.retrain is retrain and "tenure" in decision.detail
    if not retrain:
        assert f"ends at {(NOW - since_last + COOLDOWN).isoformat(timespec='minutes')}" in decision.detail


def test_enough_rows_still_retrain_during_a_drift_cooldown() -> None:
    decision = _decide(drift=DRIFT, last_drift_retrain_at=NOW - timedelta(hours=2), validated_rows_since_champion=1_500)
    assert decision.reason is RetrainReason.ENOUGH_DATA and "cooldown" in decision.detail


@pytest.mark.parametrize(
    ("now_version", "recorded", "retrain"), [("b", "a", True), ("a", "a", False), ("a", None, True)]
)
def test_schedule_retrains_only_when_the_data_changed(now_version: str, recorded: str | None, retrain: bool) -> None:
    decision = decide_scheduled_retrain(snapshot_version_now=now_version, snapshot_version_of_champion=recorded)
    assert decision.retrain is retrain and decision.reason is (RetrainReason.SCHEDULE if retrain else None)


@pytest.mark.parametrize(("retrain", "reason"), [(True, None), (False, RetrainReason.DRIFT)])
def test_decision_reason_must_match_retrain(retrain: bool, reason: RetrainReason | None) -> None:
    with pytest.raises(ValueError, match="reason"):
        RetrainDecision(retrain=retrain, reason=reason, detail="x")


# --- rollback: as rigorous as promotion ------------------------------------------------------


def live(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    return (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(int), signal


def proba(score: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-score))
    return np.column_stack([1 - p, p])


def rollback(y, versions: dict[str, np.ndarray], *, min_score: float = 0.7):
    return decide_rollback(
        y, versions, current="3", classes=[0, 1], min_score=min_score, samples=300, confidence=0.95, seed=0
    )


def test_rollback_to_an_earlier_version_that_is_credibly_better_and_good_enough():
    y, signal = live()
    rng = np.random.default_rng(1)
    decision = rollback(
        y,
        {"3": proba(rng.normal(size=len(y))), "2": proba(signal + rng.normal(0, 3, len(y))), "1": proba(signal)},
    )
    assert decision.to_version == "1"  # 2 is credibly better than 3 too, but 1 scores higher
    assert decision.scores["1"] > 0.8 and decision.lower_bounds["1"] > 0 and "roll back to v1" in decision.detail


def test_two_broken_versions_never_swap_on_noise():
    y, _ = live()
    rng = np.random.default_rng(2)
    decision = rollback(y, {"3": proba(rng.normal(size=len(y))), "2": proba(rng.normal(size=len(y)))})
    assert decision.to_version is None
    assert "no earlier version is credibly better and at least 0.700" in decision.detail


def test_a_credibly_better_version_below_the_minimum_is_no_rollback_target():
    y, signal = live()
    rng = np.random.default_rng(3)
    better_but_weak = proba(signal + rng.normal(0, 2.5, len(y)))
    decision = rollback(y, {"3": proba(rng.normal(size=len(y))), "2": better_but_weak}, min_score=0.8)
    assert decision.to_version is None and decision.lower_bounds["2"] > 0 and "below the minimum" in decision.detail
