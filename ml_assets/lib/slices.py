"""Slices of the holdout: the gate metrics per categorical value and per configured query.

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

from ml_assets.lib.config import SliceSpec
from ml_assets.lib.evaluation import (
    ClassificationMetrics,
    PairedDifference,
    classification_metrics,
    paired_auc_difference,
)

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
        definition: The query or `feature == value`, for people reading the table.
        rows: Holdout rows in the slice.
        metrics: The candidate's metrics; None when the slice is not judged.
        champion: The champion's metrics on the slice; None when not judged or not comparable.
        difference: The paired bootstrap of candidate minus champion ROC AUC on the slice.
        not_judged: Why the slice is not judged (too few rows, a missing class); None when judged.
    """

    name: str
    definition: str
    rows: int
    metrics: ClassificationMetrics | None = None
    champion: ClassificationMetrics | None = None
    difference: PairedDifference | None = None
    not_judged: str | None = None

    @property
    def judged(self) -> bool:
        """Whether the slice is large enough, with every class, to be gated."""
        return self.metrics is not None


@dataclass(frozen=True)
class SliceReport:
    """Every slice of one evaluation.

    Attributes:
        slices: The slices, categorical ones first (feature by feature), then the configured ones.
        notes: What was left out, e.g. values beyond `max_values_per_feature`.
        min_rows: The size below which a slice is not judged.
        min_class_rows: The per-class size below which a slice is not judged.
    """

    slices: tuple[SliceResult, ...] = ()
    notes: tuple[str, ...] = ()
    min_rows: int = 0
    min_class_rows: int = 0

    @property
    def judged(self) -> list[SliceResult]:
        """The slices that are gated."""
        return [s for s in self.slices if s.judged]

    @property
    def not_judged(self) -> list[SliceResult]:
        """The slices too small (or missing a class) to be gated."""
        return [s for s in self.slices if not s.judged]


def _label(value: Any) -> str:
    return MISSING if pd.isna(value) else str(value)


def define_slices(holdout: pd.DataFrame, options: SliceOptions) -> list[tuple[str, str, np.ndarray]]:
    """Returns `(name, definition, mask)` per slice: each categorical value, then each configured query.

    Args:
        holdout: The holdout rows, every column (a query may use any of them).
        options: The slices to define.

    Returns:
        The slices, each with a boolean row mask over `holdout`.

    Raises:
        ValueError: A sliced feature is not a column, or a query fails or does not give one boolean per row.
    """
    slices: list[tuple[str, str, np.ndarray]] = []
    for feature in options.features:
        if feature not in holdout.columns:
            raise ValueError(
                f"params.yaml `evaluation.slice_features` names `{feature}`, which the holdout lacks "
                f"(columns: {', '.join(map(str, holdout.columns))})"
            )
        labels = holdout[feature].map(_label)
        counts = labels.value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for value, _ in ranked[: options.max_values_per_feature]:
            definition = f"{feature} is missing" if value == MISSING else f"{feature} == {value!r}"
            slices.append((f"{feature}={value}", definition, (labels == value).to_numpy()))
    for spec in options.configured:
        try:
            mask = holdout.eval(spec.query)
        except Exception as error:
            raise ValueError(
                f"params.yaml `evaluation.slices` entry `{spec.name}`: query `{spec.query}` fails on the holdout "
                f"({type(error).__name__}: {error}); fix the query or remove the slice (holdout columns: "
                f"{', '.join(map(str, holdout.columns))})"
            ) from error
        if not isinstance(mask, pd.Series) or len(mask) != len(holdout) or not pd.api.types.is_bool_dtype(mask):
            raise ValueError(
                f"params.yaml `evaluation.slices` entry `{spec.name}`: query `{spec.query}` does not give one "
                "true/false per row; write a condition such as `age >= 65`"
            )
        slices.append((spec.name, spec.query, mask.to_numpy()))
    return slices


def _not_judged(y: np.ndarray, classes: Sequence[Any], *, min_rows: int, min_class_rows: int) -> str | None:
    counts = {c: int(np.sum(y == c)) for c in classes}
    if len(y) < min_rows:
        return f"not judged ({len(y)} rows, fewer than {min_rows})"
    scarce = [f"`{c}` {n}" for c, n in counts.items() if n < min_class_rows]
    if len([n for n in counts.values() if n > 0]) < 2:
        return f"not judged ({len(y)} rows, one class)"
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
    for name, definition, mask in define_slices(holdout, options):
        y_slice = y[mask]
        reason = _not_judged(y_slice, classes, min_rows=options.min_rows, min_class_rows=options.min_class_rows)
        if reason is not None:
            results.append(SliceResult(name, definition, int(mask.sum()), not_judged=reason))
            continue
        metrics = classification_metrics(y_slice, proba[mask], classes=classes)
        champion = difference = None
        if champion_proba is not None:
            champion = classification_metrics(y_slice, champion_proba[mask], classes=classes)
            difference = paired_auc_difference(
                y_slice,
                proba[mask],
                champion_proba[mask],
                classes=classes,
                samples=samples,
                confidence=confidence,
                seed=seed,
            )
        results.append(SliceResult(name, definition, int(mask.sum()), metrics, champion, difference))
    notes = tuple(
        f"`{feature}` has {n} values in the holdout; its {options.max_values_per_feature} most frequent are sliced"
        for feature in options.features
        if (n := int(holdout[feature].map(_label).nunique())) > options.max_values_per_feature
    )
    return SliceReport(
        slices=tuple(results), notes=notes, min_rows=options.min_rows, min_class_rows=options.min_class_rows
    )


def slice_table(report: SliceReport, *, champion_version: str | None) -> list[dict[str, Any]]:
    """One narrow row per slice for the UI and the model card.

    Args:
        report: The slices.
        champion_version: The champion compared with, named in the column header; None for none.

    Returns:
        Rows with `slice`, `rows`, `roc_auc`, `f1`, `accuracy`, `champion_roc_auc`, `vs_champion`
        (candidate minus champion ROC AUC) and `note` (empty when judged).
    """
    rows = []
    for s in report.slices:
        m, c, d = s.metrics, s.champion, s.difference
        rows.append(
            {
                "slice": s.name,
                "rows": s.rows,
                "roc_auc": round(m.roc_auc, 4) if m else None,
                "f1": round(m.f1, 4) if m else None,
                "accuracy": round(m.accuracy, 4) if m else None,
                "champion_roc_auc": round(c.roc_auc, 4) if c else None,
                "vs_champion": round(d.difference, 4) if d else None,
                "note": s.not_judged or ("" if champion_version is None or c else "champion not comparable"),
            }
        )
    return rows
