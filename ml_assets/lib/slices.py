"""Slices of the holdout: the gate metrics per categorical value and per configured query, and their gates.

A model can be better overall and worse for one group of customers. Each slice is scored like the
whole holdout (ROC AUC, F1, accuracy, rows), beside the champion on the same rows when the two are
comparable; slices too small to say anything are reported as not judged, never passed or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.lib.evaluation import ChampionComparison, ClassificationMetrics, classification_metrics
from ml_assets.lib.evaluation_params import SliceSpec
from ml_assets.lib.gates import GateResult
from ml_assets.lib.paired_bootstrap import PairedDifference, paired_auc_difference

MISSING = "<missing>"
"""How a missing categorical value is named in a slice (`internet_service=<missing>`)."""


@dataclass(frozen=True)
class SliceOptions:
    """Which slices to score and how large a slice must be to be judged.

    Attributes:
        features: Categorical features whose values are slices.
        configured: Named `DataFrame.query` slices from params.
        max_values_per_feature: A feature with more values is sliced on its most frequent ones.
        min_rows: Fewer rows and the slice is not judged.
        min_class_rows: Fewer rows of any class and the slice is not judged.
    """

    features: tuple[str, ...]
    configured: tuple[SliceSpec, ...] = ()
    max_values_per_feature: int = 20
    min_rows: int = 50
    min_class_rows: int = 5


@dataclass(frozen=True)
class SliceResult:
    """One slice's metrics, and the champion's on the same rows.

    Attributes:
        name: `feature=value` or the configured name.
        rows: Holdout rows in the slice.
        metrics: The candidate's metrics; None when the slice is not judged.
        champion: The champion's metrics on the slice; None when not judged or not comparable.
        difference: The paired bootstrap of candidate minus champion ROC AUC on the slice.
        not_judged: Why the slice is not judged (too few rows, a missing class); None when judged.
    """

    name: str
    rows: int
    metrics: ClassificationMetrics | None = None
    champion: ClassificationMetrics | None = None
    difference: PairedDifference | None = None
    not_judged: str | None = None


@dataclass(frozen=True)
class SliceReport:
    """Every slice of one evaluation: categorical ones first (feature by feature), then the configured ones."""

    slices: tuple[SliceResult, ...] = ()

    @property
    def judged(self) -> list[SliceResult]:
        """The slices that are gated."""
        return [s for s in self.slices if s.metrics is not None]

    @property
    def not_judged(self) -> list[SliceResult]:
        """The slices too small (or missing a class) to be gated."""
        return [s for s in self.slices if s.metrics is None]


def define_slices(holdout: pd.DataFrame, options: SliceOptions) -> dict[str, np.ndarray]:
    """Each categorical value's rows, then each configured query's, as boolean masks over `holdout`.

    Args:
        holdout: The holdout rows, every column (a query may use any of them).
        options: The slices to define.

    Returns:
        Slice name -> row mask; a feature's values most frequent first.

    Raises:
        ValueError: A sliced feature is not a column, or a query fails or does not give one boolean per row.
    """
    columns = ", ".join(map(str, holdout.columns))
    slices: dict[str, np.ndarray] = {}
    for feature in options.features:
        if feature not in holdout.columns:
            where = "params.yaml `evaluation.slice_features`"
            raise ValueError(f"{where} names `{feature}`, which the holdout lacks (columns: {columns})")
        labels = holdout[feature].astype(object).where(holdout[feature].notna(), MISSING).astype(str)
        counts = labels.value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for value, _ in ranked[: options.max_values_per_feature]:
            slices[f"{feature}={value}"] = (labels == value).to_numpy()
    for spec in options.configured:
        where = f"params.yaml `evaluation.slices` entry `{spec.name}`: query `{spec.query}`"
        try:
            mask = holdout.eval(spec.query)
        except Exception as error:
            raise ValueError(
                f"{where} fails on the holdout ({type(error).__name__}: {error}); fix the query or remove the slice "
                f"(holdout columns: {columns})"
            ) from error
        if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask):
            raise ValueError(f"{where} does not give one true/false per row; write a condition such as `age >= 65`")
        slices[spec.name] = mask.to_numpy()
    return slices


def _not_judged(y: np.ndarray, classes: Sequence[Any], *, min_rows: int, min_class_rows: int) -> str | None:
    counts = {c: int(np.sum(y == c)) for c in classes}
    if len(y) < min_rows:
        return f"not judged ({len(y)} rows, fewer than {min_rows})"
    if sum(n > 0 for n in counts.values()) < 2:
        return f"not judged ({len(y)} rows, one class)"
    scarce = [f"`{c}` {n}" for c, n in counts.items() if n < min_class_rows]
    if scarce:
        return f"not judged ({len(y)} rows; too few of class {', '.join(scarce)}, fewer than {min_class_rows})"
    return None


def evaluate_slices(
    holdout: pd.DataFrame,
    *,
    target: str,
    proba: np.ndarray,
    classes: Sequence[Any],
    champion_proba: np.ndarray | None,
    options: SliceOptions,
    samples: int,
    confidence: float,
    seed: int,
) -> SliceReport:
    """Scores the candidate, and the champion when comparable, on every slice of the holdout.

    Args:
        holdout: The holdout rows (all columns).
        target: The label column.
        proba: The candidate's holdout probabilities, one column per class in `classes` order.
        classes: The candidate's classes.
        champion_proba: The champion's probabilities on the same rows and classes; None when there
            is no champion or it cannot be compared like for like.
        options: The slices and the sizes below which a slice is not judged.
        samples: Bootstrap resamples per slice for the champion comparison.
        confidence: One-sided confidence level passed to the bootstrap (the gate uses its standard error).
        seed: Bootstrap seed.

    Returns:
        The report.
    """
    y = holdout[target].to_numpy()
    results: list[SliceResult] = []
    for name, mask in define_slices(holdout, options).items():
        rows = int(mask.sum())
        reason = _not_judged(y[mask], classes, min_rows=options.min_rows, min_class_rows=options.min_class_rows)
        if reason is not None:
            results.append(SliceResult(name, rows, not_judged=reason))
            continue
        metrics = classification_metrics(y[mask], proba[mask], classes=classes)
        champion = difference = None
        if champion_proba is not None:
            champion = classification_metrics(y[mask], champion_proba[mask], classes=classes)
            difference = paired_auc_difference(
                y[mask],
                proba[mask],
                champion_proba[mask],
                classes=classes,
                samples=samples,
                confidence=confidence,
                seed=seed,
            )
        results.append(SliceResult(name, rows, metrics, champion, difference))
    return SliceReport(tuple(results))


def slice_table(report: SliceReport, *, champion_version: str | None) -> list[dict[str, Any]]:
    """One narrow row per slice for the UI and the model card.

    Args:
        report: The slices.
        champion_version: The champion compared with; None for none.

    Returns:
        Rows with `slice`, `rows`, `roc_auc`, `f1`, `accuracy`, `champion_roc_auc`, `vs_champion`
        (candidate minus champion ROC AUC) and `note` (empty when judged).
    """

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return [
        {
            "slice": s.name,
            "rows": s.rows,
            "roc_auc": rounded(s.metrics and s.metrics.roc_auc),
            "f1": rounded(s.metrics and s.metrics.f1),
            "accuracy": rounded(s.metrics and s.metrics.accuracy),
            "champion_roc_auc": rounded(s.champion and s.champion.roc_auc),
            "vs_champion": rounded(s.difference and s.difference.difference),
            "note": s.not_judged or ("" if champion_version is None or s.champion else "champion not comparable"),
        }
        for s in report.slices
    ]


def _auc(s: SliceResult) -> float:
    return s.metrics.roc_auc if s.metrics else float("nan")


def _skipped(report: SliceReport | None) -> str:
    """`; 2 not judged ...: `a` (12 rows), ...` for a gate's message; empty when every slice was judged."""
    skipped = report.not_judged if report else []
    if not skipped:
        return ""
    shown = ", ".join(f"`{s.name}` ({s.rows} rows)" for s in skipped[:6]) + (", ..." if len(skipped) > 6 else "")
    return f"; {len(skipped)} not judged (too small or missing a class): {shown}"


def slices_meet_minimum(report: SliceReport | None, *, minimum: float) -> GateResult:
    """Passes when no judged slice's ROC AUC is below `minimum` (`gates.min_slice_roc_auc`).

    Slices too small to judge are named in the message and neither pass nor fail the gate; no
    report (slicing not configured) passes.
    """
    thresholds = {"min_slice_roc_auc": minimum}
    judged = report.judged if report else []
    if not judged:
        return GateResult(True, f"no slice is large enough to judge{_skipped(report)}", thresholds=thresholds)
    below = [s for s in judged if not _auc(s) >= minimum]  # NaN is below
    lowest = min(judged, key=_auc)
    if below:
        detail = ", ".join(f"`{s.name}` {_auc(s):.4f} ({s.rows} rows)" for s in below)
        message = f"{len(below)} of {len(judged)} judged slices have roc_auc below the floor {minimum:.4f}: {detail}"
    else:
        message = (
            f"all {len(judged)} judged slices reach roc_auc {minimum:.4f}, lowest `{lowest.name}` {_auc(lowest):.4f}"
        )
    observed = {"slices_judged": len(judged), "slices_below": len(below), "lowest_slice": lowest.name}
    return GateResult(
        not below, message + _skipped(report), {**observed, "lowest_slice_roc_auc": _auc(lowest)}, thresholds
    )


def no_slice_regression(
    report: SliceReport | None, comparison: ChampionComparison, *, tolerance: float, confidence: float
) -> GateResult:
    """Passes unless a judged slice is clearly worse than under the champion by more than `tolerance`.

    Blocked, per judged slice, when candidate minus champion ROC AUC on the slice's rows is below
    `-tolerance` (large) AND its one-sided upper bound is below zero (beyond noise): the paired
    bootstrap's standard error times the normal quantile at `confidence`, Bonferroni-corrected over
    the slices compared. A point estimate alone would block equally good models often: on slices of
    50-250 rows the difference spreads by several AUC points (ml_assets_tests/lib/test_slices.py).
    A champion that exists but could not be compared fails the gate, as `non_inferior` does.

    Args:
        report: The slices of the candidate, with the champion's on the same rows.
        comparison: The overall comparison with the champion (who it was, or why it was not made).
        tolerance: `gates.max_slice_regression`, in ROC AUC points.
        confidence: `gates.confidence`, one-sided, for all slices together.

    Returns:
        The verdict, naming every slice that regressed.
    """
    from scipy.stats import norm

    thresholds = {"max_slice_regression": tolerance, "confidence": confidence}
    version = comparison.champion_version
    if version is None:
        return GateResult(True, "no champion yet: nothing to compare slices with", thresholds=thresholds)
    observed: dict[str, Any] = {"champion_version": version}
    if comparison.blocker or comparison.difference is None:
        message = (
            f"cannot compare slices with champion v{version}: {comparison.blocker or 'not compared'}. "
            "Automation promotes nothing; a person may promote the `challenger` with `approve_challenger`"
        )
        return GateResult(False, message, observed, thresholds)
    compared = [(s, s.difference) for s in (report.judged if report else []) if s.difference is not None]
    if not compared:
        return GateResult(True, f"no slice to compare with champion v{version}{_skipped(report)}", observed, thresholds)
    z = float(norm.ppf(1 - (1 - confidence) / len(compared)))
    regressed = [(s, d) for s, d in compared if d.difference < -tolerance and d.difference + z * d.standard_error < 0]
    worst, gap = min(compared, key=lambda sd: sd[1].difference)
    if regressed:
        detail = "; ".join(
            f"`{s.name}` ({s.rows} rows) roc_auc {_auc(s):.4f} vs {_auc(s) - d.difference:.4f}, "
            f"difference {d.difference:+.4f} (standard error {d.standard_error:.4f})"
            for s, d in regressed
        )
        message = (
            f"{len(regressed)} of {len(compared)} slices regress against champion v{version} by more than "
            f"{tolerance:.4f} and beyond noise (one-sided {confidence:.0%} over {len(compared)} slices): {detail}"
        )
    else:
        message = (
            f"no slice regresses against champion v{version} by more than {tolerance:.4f} beyond noise "
            f"({len(compared)} compared; largest drop `{worst.name}` {gap.difference:+.4f}){_skipped(report)}"
        )
    observed |= {
        "slices_compared": len(compared),
        "slices_regressed": len(regressed),
        "worst_slice": worst.name,
        "worst_slice_difference": gap.difference,
        "z_bonferroni": z,
    }
    return GateResult(not regressed, message, observed, thresholds)
