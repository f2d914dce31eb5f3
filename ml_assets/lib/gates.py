"""Model quality gates as predicates.

Each takes observed numbers and thresholds and returns a verdict with a message that says what
failed and by how much. The Dagster layer turns each gate into one blocking asset check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_assets.lib.evaluation import BootstrapInterval


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate."""

    passed: bool
    message: str
    observed: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Observed values and thresholds side by side, for the check's metadata."""
        return {**{k: _round(v) for k, v in self.observed.items()}, **dict(self.thresholds)}


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def meets_minimum(metric: str, value: float, *, minimum: float) -> GateResult:
    """Passes when `value >= minimum`.

    Args:
        metric: The metric's name, e.g. `roc_auc`.
        value: Its observed value on the holdout.
        minimum: The threshold from params.

    Returns:
        The verdict.
    """
    passed = value >= minimum
    verb = "meets" if passed else "is below"
    return GateResult(
        passed=passed,
        message=f"{metric} {value:.4f} {verb} the minimum {minimum:.4f} (margin {value - minimum:+.4f})",
        observed={metric: value},
        thresholds={f"min_{metric}": minimum},
    )


def beats_baseline(metric: str, value: float, *, baseline: float, margin: float) -> GateResult:
    """Passes when the model beats a trivial baseline by at least `margin`.

    Args:
        metric: The metric compared.
        value: The candidate's value.
        baseline: A DummyClassifier's value on the same rows.
        margin: The required lead.

    Returns:
        The verdict.
    """
    lead = value - baseline
    passed = lead >= margin
    return GateResult(
        passed=passed,
        message=(
            f"{metric} {value:.4f} leads the baseline {baseline:.4f} by {lead:+.4f} "
            f"({'at least' if passed else 'less than'} the required {margin:.4f})"
        ),
        observed={metric: value, f"baseline_{metric}": baseline, "lead": lead},
        thresholds={"baseline_margin": margin},
    )


def no_regression(interval: BootstrapInterval | None, *, max_regression: float) -> GateResult:
    """Passes when the candidate is not credibly worse than the champion.

    The rule: the lower bound of the bootstrap interval of `candidate - champion` must lie above
    `-max_regression`. A candidate that is merely as good as the champion passes; one whose whole
    interval sits below the tolerance fails.

    Args:
        interval: The paired bootstrap interval, or None when there is no champion yet.
        max_regression: How much worse than the champion is still tolerated.

    Returns:
        The verdict.
    """
    if interval is None:
        return GateResult(passed=True, message="no champion yet: nothing to regress against")
    passed = interval.lower > -max_regression
    return GateResult(
        passed=passed,
        message=(
            f"{interval.metric} vs champion: difference {interval.difference:+.4f}, "
            f"{interval.confidence:.0%} CI [{interval.lower:+.4f}, {interval.upper:+.4f}]; lower bound "
            f"{'above' if passed else 'below'} the tolerance {-max_regression:+.4f}"
        ),
        observed={
            "difference": interval.difference,
            "ci_lower": interval.lower,
            "ci_upper": interval.upper,
            "bootstrap_samples": interval.samples,
        },
        thresholds={"max_regression": max_regression, "confidence": interval.confidence},
    )


def latency_within(p95_ms: float, *, max_p95_ms: float) -> GateResult:
    """Passes when the single-row p95 latency is within the bound."""
    passed = p95_ms <= max_p95_ms
    return GateResult(
        passed=passed,
        message=(
            f"p95 single-row latency {p95_ms:.2f} ms {'within' if passed else 'over'} the bound {max_p95_ms:.2f} ms"
        ),
        observed={"p95_ms": p95_ms},
        thresholds={"max_p95_latency_ms": max_p95_ms},
    )


def no_null_predictions(null_count: int, *, rows: int) -> GateResult:
    """Passes when the model predicted something for every row."""
    return GateResult(
        passed=null_count == 0,
        message=f"{null_count} of {rows} predictions are null or non-finite",
        observed={"null_predictions": null_count, "rows": rows},
    )


def predicts_every_class(shares: Mapping[str, float], *, min_share: float) -> GateResult:
    """Passes when every class receives at least `min_share` of the predictions.

    A model that never predicts the minority class can still score a fine accuracy; this gate
    catches it.
    """
    starved = {label: share for label, share in shares.items() if share < min_share}
    detail = ", ".join(f"`{label}` {share:.1%}" for label, share in starved.items())
    return GateResult(
        passed=not starved,
        message=(
            f"every class gets at least {min_share:.1%} of predictions"
            if not starved
            else f"classes predicted too rarely: {detail} (minimum {min_share:.1%})"
        ),
        observed={f"share_{label}": share for label, share in shares.items()},
        thresholds={"min_class_share": min_share},
    )
