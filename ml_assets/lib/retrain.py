"""The retraining and rollback policy, as pure functions (no Dagster, no I/O, no clock).

Sensors gather the facts (rows since the champion, the latest drift report, a degraded champion,
the time of the last drift retrain) and these functions decide; `now` is always passed in, so
every decision is reproducible in a test.

Priority of `decide_retrain`, first match wins:

1. no champion yet -> retrain (`new_data`), as soon as there is a validated row;
2. the champion is degraded on live labels -> retrain (`performance`). The degradation stays on
   the books until the champion changes: a retrain that does not replace it is retried when new
   data arrives, after a backoff that doubles per attempt (`retrain.performance_retry_minutes`);
3. drift, outside the cooldown since the last drift retrain -> retrain (`drift`); inside the
   cooldown enough new rows still can: the cooldown stops drift loops, not volume retrains;
4. at least `min_new_rows` validated rows since the champion -> retrain (`enough_data`);
5. otherwise no retrain, with a detail saying why.

`decide_rollback` holds a rollback to the rigour of promotion: an earlier champion must beat the
current one on the live labels by a paired bootstrap and meet the minimum live score itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.lib.drift import DriftReport
from ml_assets.lib.evaluation import classification_metrics
from ml_assets.lib.paired_bootstrap import paired_auc_difference


class RetrainReason(StrEnum):
    """Why a retrain was started; also the value of the run's `ml_assets/trigger` tag."""

    NEW_DATA = "new_data"
    ENOUGH_DATA = "enough_data"
    DRIFT = "drift"
    PERFORMANCE = "performance"
    SCHEDULE = "schedule"
    MANUAL = "manual"


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, why (None when not), and a sentence for the run tags and the logs."""

    retrain: bool
    reason: RetrainReason | None
    detail: str

    def __post_init__(self) -> None:
        if self.retrain != (self.reason is not None):
            raise ValueError("a decision to retrain needs a reason, and only such a decision has one")


@dataclass(frozen=True)
class PerformanceCheck:
    """The champion's live score on one labelled batch against the minimum."""

    metric: str
    champion_score: float
    threshold: float
    degraded: bool
    detail: str


def evaluate_live_performance(
    model: Any, rows: pd.DataFrame, *, target: str, metric: str, threshold: float
) -> PerformanceCheck:
    """Scores the champion on labelled rows and compares its `metric` with `threshold`.

    Args:
        model: The champion (a pipeline over raw columns, with `classes_`).
        rows: Labelled rows; every column but the target is passed to the model.
        target: The label column.
        metric: A metric of `ClassificationMetrics`, higher is better (`retrain.performance_metric`).
        threshold: The minimum (`retrain.min_live_score`).

    Returns:
        The check; a score that cannot be computed (one class only) counts as degraded.
    """
    proba = np.asarray(model.predict_proba(rows.drop(columns=[target])), dtype=float)
    score = classification_metrics(rows[target], proba, classes=list(model.classes_)).get(metric)
    degraded = not np.isfinite(score) or score < threshold
    verb = "is below" if degraded else "meets"
    return PerformanceCheck(
        metric=metric,
        champion_score=float(score),
        threshold=threshold,
        degraded=bool(degraded),
        detail=f"live {metric} {score:.3f} on {len(rows)} rows {verb} the minimum {threshold:.3f}",
    )


@dataclass(frozen=True)
class Degradation:
    """A degraded champion, on the books until the champion changes.

    Attributes:
        champion_version: The version found degraded.
        detail: What was measured.
        since: When it was first found degraded.
        attempts: Performance retrains started for it so far.
        last_attempt_at: When the last one started.
        rows_since_attempt: Validated rows that arrived after the last attempt.
    """

    champion_version: str
    detail: str
    since: datetime
    attempts: int = 0
    last_attempt_at: datetime | None = None
    rows_since_attempt: int = 0

    def next_attempt_at(self, *, base: timedelta) -> datetime | None:
        """When a retry is allowed: `base` doubled per earlier attempt, capped at a week."""
        if self.last_attempt_at is None:
            return None
        return self.last_attempt_at + min(base * 2 ** max(self.attempts - 1, 0), timedelta(days=7))


def decide_retrain(
    *,
    validated_rows_since_champion: int,
    min_new_rows: int,
    drift: DriftReport | None,
    last_drift_retrain_at: datetime | None,
    drift_cooldown: timedelta,
    now: datetime,
    degradation: Degradation | None,
    performance_retry: timedelta,
    champion_exists: bool,
) -> RetrainDecision:
    """Decides whether the sensors start a retrain (priority in the module docs).

    Args:
        validated_rows_since_champion: Validated rows since the champion's training snapshot.
        min_new_rows: Rows that retrain on volume alone (`retrain.min_new_rows`).
        drift: The latest drift report of new data vs the champion's training data, or None.
        last_drift_retrain_at: When the last drift-triggered retrain started, or None.
        drift_cooldown: Minimum time between two drift-triggered retrains.
        now: The current time (UTC-aware).
        degradation: The champion's open degradation, or None.
        performance_retry: The first backoff before retrying a performance retrain.
        champion_exists: Whether there is a champion.

    Returns:
        The decision, with a detail explaining it.
    """
    rows = validated_rows_since_champion
    if not champion_exists:
        if rows == 0:
            return RetrainDecision(False, None, "no champion yet and no validated rows; land a batch first")
        return RetrainDecision(
            True, RetrainReason.NEW_DATA, f"no champion yet; train the first model on {rows} validated rows"
        )

    if degradation is not None:
        retry_at = degradation.next_attempt_at(base=performance_retry)
        if degradation.attempts == 0:
            return RetrainDecision(True, RetrainReason.PERFORMANCE, degradation.detail)
        if degradation.rows_since_attempt > 0 and retry_at is not None and now >= retry_at:
            return RetrainDecision(
                True,
                RetrainReason.PERFORMANCE,
                f"{degradation.detail}; retry {degradation.attempts + 1} on {degradation.rows_since_attempt} new rows",
            )
        waiting = (
            f"champion v{degradation.champion_version} degraded since {_when(degradation.since)} "
            f"({degradation.detail}); {degradation.attempts} retrain(s) did not replace it; the next try waits "
            f"for new data and {_when(retry_at)}. A person may approve a challenger, force a rollback or pin"
        )
        return RetrainDecision(False, None, waiting)

    drift_note = _drift_note(drift)
    if drift is not None and drift.drifted:
        cooldown_ends = None if last_drift_retrain_at is None else last_drift_retrain_at + drift_cooldown
        if cooldown_ends is None or now >= cooldown_ends:
            return RetrainDecision(True, RetrainReason.DRIFT, drift.summary())
        drift_note = (
            f"{drift.summary()}; in cooldown after the drift retrain at "
            f"{_when(last_drift_retrain_at)}, ends at {_when(cooldown_ends)}"
        )

    volume = f"{rows} new validated rows since the champion (threshold {min_new_rows})"
    if rows >= min_new_rows:
        return RetrainDecision(True, RetrainReason.ENOUGH_DATA, f"{volume}; {drift_note}")
    return RetrainDecision(False, None, f"{volume}; {drift_note}")


def decide_scheduled_retrain(*, snapshot_version_now: str, snapshot_version_of_champion: str | None) -> RetrainDecision:
    """The weekly schedule retrains only when the validated data changed since the last snapshot."""
    if snapshot_version_of_champion is None:
        return RetrainDecision(
            True, RetrainReason.SCHEDULE, f"no snapshot recorded yet; train on data {snapshot_version_now}"
        )
    if snapshot_version_now == snapshot_version_of_champion:
        return RetrainDecision(
            False, None, f"data {snapshot_version_now} is what the last snapshot holds; nothing new to learn from"
        )
    return RetrainDecision(
        True,
        RetrainReason.SCHEDULE,
        f"data changed from {snapshot_version_of_champion} to {snapshot_version_now} since the last snapshot",
    )


@dataclass(frozen=True)
class RollbackDecision:
    """Whether to roll back, to which version, and the evidence.

    Attributes:
        to_version: The earlier champion to restore, or None.
        detail: A sentence naming every earlier version weighed and why it was or was not chosen.
        scores: Version -> live score on the same rows (the current champion included).
        lower_bounds: Version -> one-sided lower bound of its lead over the current champion.
    """

    to_version: str | None
    detail: str
    scores: Mapping[str, float]
    lower_bounds: Mapping[str, float]


def decide_rollback(
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    proba: Mapping[str, np.ndarray],
    *,
    current: str,
    classes: Sequence[Any],
    min_score: float,
    samples: int,
    confidence: float,
    seed: int,
) -> RollbackDecision:
    """Picks the earlier champion to roll back to, if one is credibly better and good enough.

    An earlier version qualifies when the one-sided lower bound of the paired bootstrap of its
    live ROC AUC minus the current champion's lies above 0 at `confidence`, and its own live score
    meets `min_score`. Among those that qualify, the highest score wins. Two broken versions
    therefore never swap on noise.

    Args:
        y_true: Live labels.
        proba: Version -> its probabilities on the same rows (the current champion included).
        current: The current champion's version.
        classes: The class labels, in column order (the same for every version).
        min_score: The minimum live score (`retrain.min_live_score`).
        samples: Bootstrap resamples.
        confidence: One-sided confidence level.
        seed: Bootstrap seed.

    Returns:
        The decision.
    """
    scores = {v: classification_metrics(y_true, p, classes=classes).roc_auc for v, p in proba.items()}
    bounds: dict[str, float] = {}
    qualified: list[str] = []
    notes: list[str] = []
    for version, p in proba.items():
        if version == current:
            continue
        lead = paired_auc_difference(
            y_true, p, proba[current], classes=classes, samples=samples, confidence=confidence, seed=seed
        )
        bounds[version] = lead.lower
        credible, good = lead.lower > 0, scores[version] >= min_score
        if credible and good:
            qualified.append(version)
        why = "qualifies" if credible and good else "not credibly better" if not credible else "below the minimum"
        notes.append(f"v{version} {scores[version]:.3f} (lead lower bound {lead.lower:+.4f}: {why})")
    head = f"current v{current} scores {scores[current]:.3f} on {len(y_true)} live rows"
    if not qualified:
        weighed = "; ".join(notes) if notes else "no earlier champion to weigh"
        return RollbackDecision(
            None,
            f"{head}; no earlier version is credibly better and at least {min_score:.3f}: {weighed}",
            scores,
            bounds,
        )
    best = max(qualified, key=lambda v: scores[v])
    return RollbackDecision(best, f"{head}; roll back to v{best}: {'; '.join(notes)}", scores, bounds)


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.isoformat(timespec="minutes")


def _drift_note(drift: DriftReport | None) -> str:
    if drift is None:
        return "no drift report"
    if drift.status == "insufficient_data":
        return f"drift not assessed ({drift.summary()})"
    return drift.summary() if drift.drifted else "no drift"
