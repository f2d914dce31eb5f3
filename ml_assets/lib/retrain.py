"""The retraining policy, as pure functions (no Dagster, no I/O, no clock).

Sensors and schedules gather the facts (rows since the champion, the latest drift report, the
live score, the time of the last drift-triggered retrain) and these functions decide. `now` is
always passed in, so every decision is reproducible in a test.

Priority of `decide_retrain`, first match wins:

1. no champion yet -> retrain (`new_data`), as soon as there is a validated row;
2. live performance below the minimum -> retrain (`performance`);
3. drift, outside the cooldown since the last drift retrain -> retrain (`drift`); drift inside
   the cooldown does not trigger (the detail says when the cooldown ends), but enough new
   rows still can: the cooldown stops drift retrain loops, not volume retrains;
4. at least `min_new_rows` validated rows since the champion -> retrain (`enough_data`);
5. otherwise no retrain, with a detail saying why.

The weekly schedule (`decide_scheduled_retrain`) retrains only when the data snapshot changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ml_assets.lib.drift import DriftReport


class RetrainReason(StrEnum):
    """Why a retrain was started; also the value of the run's `retrain_reason` tag."""

    NEW_DATA = "new_data"
    ENOUGH_DATA = "enough_data"
    DRIFT = "drift"
    PERFORMANCE = "performance"
    SCHEDULE = "schedule"
    MANUAL = "manual"


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, why, and a sentence for the run tags and the logs.

    Attributes:
        retrain: Whether to start a training run.
        reason: The trigger when `retrain` is True; None otherwise.
        detail: A human-readable explanation, also when not retraining.

    """

    retrain: bool
    reason: RetrainReason | None
    detail: str

    def __post_init__(self) -> None:
        if self.retrain and self.reason is None:
            raise ValueError("a retrain decision needs a reason; pass a RetrainReason")
        if not self.retrain and self.reason is not None:
            raise ValueError(f"reason {self.reason!r} given for a decision not to retrain; pass None")


@dataclass(frozen=True)
class PerformanceCheck:
    """The champion's live score against the minimum, and whether to roll back.

    Attributes:
        metric: The metric name, e.g. "roc_auc" (higher is better).
        champion_score: The champion's score on recent labelled traffic.
        threshold: The minimum acceptable score.
        previous_score: The previous champion's score on the same data, if known.
        degraded: `champion_score < threshold`.
        rollback: Degraded, and the previous version scores higher than the champion.
        detail: A sentence naming the metric, the scores and the threshold.

    """

    metric: str
    champion_score: float
    threshold: float
    previous_score: float | None
    degraded: bool
    rollback: bool
    detail: str


def evaluate_live_performance(
    *,
    metric: str,
    champion_score: float,
    threshold: float,
    previous_score: float | None,
) -> PerformanceCheck:
    """Check the champion's live score against the minimum.

    Args:
        metric: The metric name (higher is better), e.g. "roc_auc".
        champion_score: The champion's score on recent labelled traffic.
        threshold: The minimum acceptable score, e.g. `retrain.min_live_score`.
        previous_score: The previous champion's score on the same traffic, or None if there
            is no previous version.

    Returns:
        The check; `rollback` is True only when the champion is degraded and the previous
        version does better on the same data.

    Raises:
        ValueError: The metric name is empty or a score is not a finite number.

    """
    if not metric:
        raise ValueError("metric is empty; pass the metric name, e.g. 'roc_auc'")
    for name, value in (
        ("champion_score", champion_score),
        ("threshold", threshold),
        ("previous_score", previous_score),
    ):
        if value is not None and not math.isfinite(value):
            raise ValueError(
                f"{name} for {metric} is {value!r}; pass a finite number (was the live sample empty or single-class?)"
            )
    degraded = champion_score < threshold
    rollback = degraded and previous_score is not None and previous_score > champion_score
    if not degraded:
        detail = f"live {metric} {champion_score:.3f} meets the minimum {threshold:.3f}"
    else:
        detail = f"live {metric} {champion_score:.3f} is below the minimum {threshold:.3f}"
        if previous_score is None:
            detail += "; no previous version to roll back to"
        elif rollback:
            detail += f"; the previous version scores {previous_score:.3f} on the same data, roll back to it"
        else:
            detail += f"; the previous version scores {previous_score:.3f}, no better, keep serving the champion"
    return PerformanceCheck(
        metric=metric,
        champion_score=champion_score,
        threshold=threshold,
        previous_score=previous_score,
        degraded=degraded,
        rollback=rollback,
        detail=detail,
    )


def decide_retrain(
    *,
    validated_rows_since_champion: int,
    min_new_rows: int,
    drift: DriftReport | None,
    last_drift_retrain_at: datetime | None,
    drift_cooldown: timedelta,
    now: datetime,
    performance: PerformanceCheck | None,
    champion_exists: bool,
) -> RetrainDecision:
    """Decide whether the data sensors should start a retrain (priority in module docs).

    Args:
        validated_rows_since_champion: Validated rows that landed after the champion's
            training snapshot (all validated rows when there is no champion).
        min_new_rows: Rows needed to retrain on volume alone (`retrain.min_new_rows`).
        drift: The latest drift report of new data vs the champion's training data, or None
            when it was not computed.
        last_drift_retrain_at: When the last drift-triggered retrain started, or None.
        drift_cooldown: Minimum time between two drift-triggered retrains.
        now: The current time; same timezone-awareness as `last_drift_retrain_at`.
        performance: The latest live performance check, or None when there is none.
        champion_exists: Whether a champion model is registered.

    Returns:
        The decision, with a detail explaining it.

    Raises:
        ValueError: A count or the cooldown is negative, `min_new_rows` < 1, or `now` and
            `last_drift_retrain_at` mix naive and timezone-aware datetimes.

    """
    if validated_rows_since_champion < 0:
        raise ValueError(
            f"validated_rows_since_champion is {validated_rows_since_champion}; it counts rows and cannot be negative"
        )
    if min_new_rows < 1:
        raise ValueError(f"min_new_rows is {min_new_rows}; use a positive row count")
    if drift_cooldown < timedelta(0):
        raise ValueError(f"drift_cooldown is {drift_cooldown}; use a duration >= 0")
    if last_drift_retrain_at is not None and (now.tzinfo is None) != (last_drift_retrain_at.tzinfo is None):
        raise ValueError(
            "now and last_drift_retrain_at mix naive and timezone-aware datetimes; "
            "pass both as UTC-aware (datetime.now(timezone.utc))"
        )

    rows = validated_rows_since_champion
    if not champion_exists:
        if rows == 0:
            return RetrainDecision(
                retrain=False,
                reason=None,
                detail="no champion yet and no validated rows; land a batch first",
            )
        return RetrainDecision(
            retrain=True,
            reason=RetrainReason.NEW_DATA,
            detail=f"no champion yet; train the first model on {rows} validated rows",
        )

    if performance is not None and performance.degraded:
        return RetrainDecision(retrain=True, reason=RetrainReason.PERFORMANCE, detail=performance.detail)

    drift_note = _drift_note(drift)
    if drift is not None and drift.drifted:
        cooldown_ends = None if last_drift_retrain_at is None else last_drift_retrain_at + drift_cooldown
        if cooldown_ends is None or now >= cooldown_ends:
            return RetrainDecision(retrain=True, reason=RetrainReason.DRIFT, detail=drift.summary())
        drift_note = (
            f"{drift.summary()}; in cooldown after the drift retrain at "
            f"{_when(last_drift_retrain_at)}, ends at {_when(cooldown_ends)}"
        )

    volume = f"{rows} new validated rows since the champion (threshold {min_new_rows})"
    if rows >= min_new_rows:
        return RetrainDecision(
            retrain=True,
            reason=RetrainReason.ENOUGH_DATA,
            detail=f"{volume}; {drift_note}",
        )
    detail = f"{volume}; {drift_note}"
    if performance is not None:
        detail += f"; {performance.detail}"
    return RetrainDecision(retrain=False, reason=None, detail=detail)


def decide_scheduled_retrain(*, snapshot_version_now: str, snapshot_version_of_champion: str | None) -> RetrainDecision:
    """Decide whether the weekly schedule retrains: only when the data snapshot changed.

    Args:
        snapshot_version_now: The current training snapshot's version (e.g. its DVC md5).
        snapshot_version_of_champion: The snapshot version the champion was trained on, or
            None when there is no champion (or it was not recorded).

    Returns:
        Retrain (reason `schedule`) when the versions differ or the champion's is unknown.

    Raises:
        ValueError: `snapshot_version_now` is empty.

    """
    if not snapshot_version_now:
        raise ValueError("snapshot_version_now is empty; materialize the training snapshot first")
    if snapshot_version_of_champion is None:
        return RetrainDecision(
            retrain=True,
            reason=RetrainReason.SCHEDULE,
            detail=(f"no snapshot version recorded for a champion; train on snapshot {snapshot_version_now}"),
        )
    if snapshot_version_now == snapshot_version_of_champion:
        return RetrainDecision(
            retrain=False,
            reason=None,
            detail=(
                f"snapshot {snapshot_version_now} is the one the champion was trained on; nothing new to learn from"
            ),
        )
    return RetrainDecision(
        retrain=True,
        reason=RetrainReason.SCHEDULE,
        detail=(f"snapshot changed from {snapshot_version_of_champion} to {snapshot_version_now} since the champion"),
    )


def manual_retrain(*, requested_by: str, note: str = "") -> RetrainDecision:
    """Record an operator's request to retrain.

    Args:
        requested_by: Who asked (a user name or the launching tool).
        note: Optional free text.

    Returns:
        A decision to retrain with reason `manual`.

    Raises:
        ValueError: `requested_by` is empty.

    """
    if not requested_by:
        raise ValueError("requested_by is empty; say who asked for the retrain")
    detail = f"manual retrain requested by {requested_by}"
    if note:
        detail += f": {note}"
    return RetrainDecision(retrain=True, reason=RetrainReason.MANUAL, detail=detail)


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.isoformat(timespec="minutes")


def _drift_note(drift: DriftReport | None) -> str:
    if drift is None:
        return "no drift report"
    if drift.status == "insufficient_data":
        return f"drift not assessed ({drift.summary()})"
    if drift.drifted:
        return drift.summary()
    return "no drift"


__all__ = [
    "PerformanceCheck",
    "RetrainDecision",
    "RetrainReason",
    "decide_retrain",
    "decide_scheduled_retrain",
    "evaluate_live_performance",
    "manual_retrain",
]
