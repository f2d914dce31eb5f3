"""Unit tests of `ml_assets.lib.retrain`: triggers, their priority, cooldown and rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ml_assets.lib.drift import DriftReport, FeatureDrift
from ml_assets.lib.retrain import (
    PerformanceCheck,
    RetrainDecision,
    RetrainReason,
    decide_retrain,
    decide_scheduled_retrain,
    evaluate_live_performance,
    manual_retrain,
)

NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(hours=24)


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
HEALTHY = evaluate_live_performance(metric="roc_auc", champion_score=0.81, threshold=0.70, previous_score=0.78)
DEGRADED = evaluate_live_performance(metric="roc_auc", champion_score=0.64, threshold=0.70, previous_score=0.72)


def _decide(**overrides) -> RetrainDecision:
    facts = {
        "validated_rows_since_champion": 312,
        "min_new_rows": 1_000,
        "drift": NO_DRIFT,
        "last_drift_retrain_at": None,
        "drift_cooldown": COOLDOWN,
        "now": NOW,
        "performance": HEALTHY,
        "champion_exists": True,
        **overrides,
    }
    return decide_retrain(**facts)


# --- evaluate_live_performance -----------------------------------------------------------


@pytest.mark.parametrize(
    ("champion", "previous", "degraded", "rollback"),
    [
        (0.81, 0.78, False, False),  # healthy
        (0.70, 0.90, False, False),  # exactly at the threshold is fine
        (0.81, None, False, False),
        (0.64, 0.72, True, True),  # degraded, previous is better: roll back
        (0.64, 0.60, True, False),  # degraded, previous is worse: keep
        (0.64, 0.64, True, False),  # a tie is not better
        (0.64, None, True, False),  # nothing to roll back to
    ],
)
def test_live_performance_flags(champion: float, previous: float | None, degraded: bool, rollback: bool) -> None:
    check = evaluate_live_performance(
        metric="roc_auc",
        champion_score=champion,
        threshold=0.70,
        previous_score=previous,
    )
    assert (check.degraded, check.rollback) == (degraded, rollback)
    assert "roc_auc" in check.detail
    assert f"{champion:.3f}" in check.detail and "0.700" in check.detail
    if previous is not None and degraded:
        assert f"{previous:.3f}" in check.detail
    assert ("roll back to it" in check.detail) == rollback


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ""}, "metric is empty"),
        ({"champion_score": float("nan")}, "champion_score for roc_auc"),
        ({"previous_score": float("inf")}, "previous_score for roc_auc"),
    ],
)
def test_live_performance_rejects_bad_inputs(kwargs: dict, message: str) -> None:
    args = {
        "metric": "roc_auc",
        "champion_score": 0.8,
        "threshold": 0.7,
        "previous_score": None,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        evaluate_live_performance(**args)


# --- decide_retrain: each trigger --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"champion_exists": False}, RetrainReason.NEW_DATA),
        ({"performance": DEGRADED}, RetrainReason.PERFORMANCE),
        ({"drift": DRIFT}, RetrainReason.DRIFT),
        ({"validated_rows_since_champion": 1_000}, RetrainReason.ENOUGH_DATA),
        ({"validated_rows_since_champion": 50_000}, RetrainReason.ENOUGH_DATA),
    ],
)
def test_each_trigger_retrains_with_its_reason(overrides: dict, reason: RetrainReason) -> None:
    decision = _decide(**overrides)
    assert decision.retrain
    assert decision.reason is reason
    assert decision.detail


def test_nothing_new_means_no_retrain_and_says_why() -> None:
    decision = _decide()
    assert decision == RetrainDecision(
        retrain=False,
        reason=None,
        detail=(
            "312 new validated rows since the champion (threshold 1000); no drift; "
            "live roc_auc 0.810 meets the minimum 0.700"
        ),
    )


@pytest.mark.parametrize(
    ("drift", "performance", "expected"),
    [
        (None, None, "999 new validated rows since the champion (threshold 1000); "),
        (None, None, "no drift report"),
        (INSUFFICIENT, None, "drift not assessed (insufficient data: 57 current"),
        (NO_DRIFT, None, "; no drift"),
    ],
)
def test_no_retrain_detail_covers_the_drift_state(
    drift: DriftReport | None, performance: PerformanceCheck | None, expected: str
) -> None:
    decision = _decide(validated_rows_since_champion=999, drift=drift, performance=performance)
    assert not decision.retrain and decision.reason is None
    assert expected in decision.detail


def test_no_champion_and_no_rows_waits_for_data() -> None:
    decision = _decide(champion_exists=False, validated_rows_since_champion=0)
    assert not decision.retrain
    assert "no validated rows" in decision.detail


# --- priority ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"champion_exists": False, "performance": DEGRADED, "drift": DRIFT},
            RetrainReason.NEW_DATA,
        ),
        (
            {
                "performance": DEGRADED,
                "drift": DRIFT,
                "validated_rows_since_champion": 5_000,
            },
            RetrainReason.PERFORMANCE,
        ),
        (
            {"drift": DRIFT, "validated_rows_since_champion": 5_000},
            RetrainReason.DRIFT,
        ),
    ],
)
def test_triggers_follow_the_priority(overrides: dict, reason: RetrainReason) -> None:
    assert _decide(**overrides).reason is reason


def test_performance_detail_is_the_checks_detail() -> None:
    decision = _decide(performance=DEGRADED)
    assert decision.detail == DEGRADED.detail
    assert "roll back" in decision.detail


# --- drift cooldown ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since_last", "retrain"),
    [
        (timedelta(hours=1), False),
        (timedelta(hours=23, minutes=59), False),
        (timedelta(hours=24), True),  # the cooldown has ended at exactly 24 h
        (timedelta(days=3), True),
    ],
)
def test_drift_respects_the_cooldown(since_last: timedelta, retrain: bool) -> None:
    decision = _decide(drift=DRIFT, last_drift_retrain_at=NOW - since_last)
    assert decision.retrain is retrain
    if retrain:
        assert decision.reason is RetrainReason.DRIFT
        assert "tenure" in decision.detail
    else:
        ends = (NOW - since_last + COOLDOWN).isoformat(timespec="minutes")
        assert f"ends at {ends}" in decision.detail
        assert "tenure" in decision.detail


def test_enough_rows_still_retrain_during_a_drift_cooldown() -> None:
    decision = _decide(
        drift=DRIFT,
        last_drift_retrain_at=NOW - timedelta(hours=2),
        validated_rows_since_champion=1_500,
    )
    assert decision.reason is RetrainReason.ENOUGH_DATA
    assert "cooldown" in decision.detail


def test_no_cooldown_means_every_drift_retrains() -> None:
    decision = _decide(drift=DRIFT, last_drift_retrain_at=NOW, drift_cooldown=timedelta(0))
    assert decision.reason is RetrainReason.DRIFT


def test_insufficient_drift_data_does_not_trigger() -> None:
    assert not _decide(drift=INSUFFICIENT).retrain


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"validated_rows_since_champion": -1}, "cannot be negative"),
        ({"min_new_rows": 0}, "min_new_rows is 0"),
        ({"drift_cooldown": timedelta(hours=-1)}, "drift_cooldown"),
        (
            {"last_drift_retrain_at": datetime(2026, 11, 9, 1, 0)},
            "mix naive and timezone-aware",
        ),
    ],
)
def test_decide_retrain_rejects_bad_inputs(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _decide(**overrides)


# --- schedule, manual, decision invariants -----------------------------------------------


@pytest.mark.parametrize(
    ("now_version", "champion_version", "retrain"),
    [
        ("md5:bbb", "md5:aaa", True),
        ("md5:aaa", "md5:aaa", False),
        ("md5:aaa", None, True),
    ],
)
def test_schedule_retrains_only_when_the_snapshot_changed(
    now_version: str, champion_version: str | None, retrain: bool
) -> None:
    decision = decide_scheduled_retrain(snapshot_version_now=now_version, snapshot_version_of_champion=champion_version)
    assert decision.retrain is retrain
    assert decision.reason is (RetrainReason.SCHEDULE if retrain else None)
    assert now_version in decision.detail


def test_schedule_needs_a_snapshot_version() -> None:
    with pytest.raises(ValueError, match="snapshot_version_now is empty"):
        decide_scheduled_retrain(snapshot_version_now="", snapshot_version_of_champion="x")


def test_manual_retrain() -> None:
    decision = manual_retrain(requested_by="alice", note="new feature")
    assert decision.reason is RetrainReason.MANUAL
    assert decision.detail == "manual retrain requested by alice: new feature"
    with pytest.raises(ValueError, match="requested_by"):
        manual_retrain(requested_by="")


def test_reasons_are_the_documented_strings() -> None:
    assert [str(r) for r in RetrainReason] == [
        "new_data",
        "enough_data",
        "drift",
        "performance",
        "schedule",
        "manual",
    ]


@pytest.mark.parametrize(("retrain", "reason"), [(True, None), (False, RetrainReason.DRIFT)])
def test_decision_reason_must_match_retrain(retrain: bool, reason: RetrainReason | None) -> None:
    with pytest.raises(ValueError, match="reason"):
        RetrainDecision(retrain=retrain, reason=reason, detail="x")
