"""Model quality gates as predicates.

Each takes observed numbers and thresholds and returns a verdict with a message that says what
failed and by how much. The Dagster layer turns each gate into one blocking asset check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ml_assets.lib.evaluation import CandidateEvaluation, ChampionComparison

if TYPE_CHECKING:
    from ml_assets.lib.config import GateParams


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


def non_inferior(comparison: ChampionComparison, *, margin: float, min_power: float) -> GateResult:
    """Passes when the candidate is shown not worse than the champion by more than `margin`.

    The test: H0 "candidate AUC <= champion AUC - margin" is rejected when the one-sided lower
    bound of the paired bootstrap of candidate minus champion lies above `-margin`. A model worse
    by `margin` or more is then promoted with probability at most 1 - confidence. Its power (the
    chance an equally good model passes) depends on the holdout's size; when the observed
    standard error makes that chance fall below `min_power`, a failure says the holdout is too
    small to decide, and how many rows would be, instead of a bare refusal.

    A comparison that could not be made fails: nothing is promoted without a person.

    Args:
        comparison: The candidate against the current champion.
        margin: The non-inferiority margin in AUC points (`gates.non_inferiority_margin`).
        min_power: The power wanted for an equally good model (`gates.min_power`).

    Returns:
        The verdict.
    """
    from scipy.stats import norm

    version = comparison.champion_version
    if version is None:
        return GateResult(
            passed=True, message="no champion yet: nothing to compare with", observed={"champion": "none"}
        )
    if comparison.blocker or comparison.difference is None:
        return GateResult(
            passed=False,
            message=(
                f"cannot compare with champion v{version}: {comparison.blocker}. Automation promotes nothing; "
                "the candidate is registered as `challenger`. A person may promote it with the "
                "`approve_challenger` job, or fix the cause and retrain"
            ),
            observed={"champion_version": version, "blocker": comparison.blocker or "not compared"},
        )
    d = comparison.difference
    passed = d.lower > -margin
    z = float(norm.ppf(d.confidence))
    power = float(norm.cdf(margin / d.standard_error - z)) if d.standard_error > 0 else 1.0
    message = (
        f"{d.metric} vs champion v{version}: difference {d.difference:+.4f}, one-sided {d.confidence:.0%} lower "
        f"bound {d.lower:+.4f} {'above' if passed else 'not above'} the margin {-margin:+.4f}"
    )
    if not passed and power < min_power:
        needed = int(np.ceil(d.rows * (d.standard_error * (z + float(norm.ppf(min_power))) / margin) ** 2))
        message += (
            f". The holdout is too small to decide: with {d.rows} rows an equally good model passes only "
            f"{power:.0%} of the time (wanted {min_power:.0%}); about {needed} holdout rows would do. "
            "A person may promote it with the `approve_challenger` job"
        )
    return GateResult(
        passed=passed,
        message=message,
        observed={
            "champion_version": version,
            "difference": d.difference,
            "lower_bound": d.lower,
            "standard_error": d.standard_error,
            "power_if_equal": power,
            "holdout_rows": d.rows,
        },
        thresholds={"non_inferiority_margin": margin, "confidence": d.confidence, "min_power": min_power},
    )


def latency_within(cpu_ms_per_row: float, *, max_cpu_ms: float) -> GateResult:
    """Passes when one single-row prediction costs at most `max_cpu_ms` of CPU time."""
    passed = cpu_ms_per_row <= max_cpu_ms
    return GateResult(
        passed=passed,
        message=(
            f"single-row prediction costs {cpu_ms_per_row:.3f} ms of CPU "
            f"({'within' if passed else 'over'} the bound {max_cpu_ms:.3f} ms)"
        ),
        observed={"cpu_ms_per_row": cpu_ms_per_row},
        thresholds={"max_cpu_ms_per_row": max_cpu_ms},
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


def model_verdicts(evaluation: CandidateEvaluation, limits: GateParams) -> dict[str, GateResult]:
    """The gates on the model alone, by check name (the blocking checks of `model_evaluation`).

    Args:
        evaluation: The candidate's evaluation.
        limits: `gates` from params.

    Returns:
        Check name -> verdict.
    """
    from ml_assets.lib.slices import slices_meet_minimum  # slices.py builds on GateResult: imported here

    metrics = evaluation.metrics
    return {
        "meets_min_roc_auc": meets_minimum("roc_auc", metrics.roc_auc, minimum=limits.min_roc_auc),
        "meets_min_f1": meets_minimum("f1", metrics.f1, minimum=limits.min_f1),
        "beats_baseline": beats_baseline(
            "roc_auc", metrics.roc_auc, baseline=evaluation.baseline.roc_auc, margin=limits.baseline_margin
        ),
        "latency_within_bound": latency_within(evaluation.latency.cpu_ms_per_row, max_cpu_ms=limits.max_cpu_ms_per_row),
        "no_null_predictions": no_null_predictions(evaluation.null_predictions, rows=metrics.n_rows),
        "predicts_every_class": predicts_every_class(evaluation.shares, min_share=limits.min_class_share),
        "slices_meet_min_roc_auc": slices_meet_minimum(evaluation.slices, minimum=limits.min_slice_roc_auc),
    }


def champion_verdicts(evaluation: CandidateEvaluation, limits: GateParams) -> dict[str, GateResult]:
    """The gates against the champion, by check name (blocking checks of `registered_model`).

    Args:
        evaluation: The candidate's evaluation, with its champion comparison.
        limits: `gates` from params.

    Returns:
        Check name -> verdict.
    """
    from ml_assets.lib.slices import no_slice_regression

    return {
        "no_regression_vs_champion": non_inferior(
            evaluation.comparison, margin=limits.non_inferiority_margin, min_power=limits.min_power
        ),
        "no_slice_regression_vs_champion": no_slice_regression(
            evaluation.slices,
            evaluation.comparison,
            tolerance=limits.max_slice_regression,
            confidence=limits.confidence,
        ),
    }


def as_tag(verdict: GateResult) -> str:
    """A verdict as an MLflow tag value, as the model version page shows it."""
    return f"{'passed' if verdict.passed else 'FAILED'}: {verdict.message}"[:4000]
