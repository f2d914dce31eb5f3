"""Global explanations of a model: permutation importance of each raw input column.

`sklearn.inspection.permutation_importance` through the whole pipeline, so in terms of the columns
a client sends. Why not SHAP: `shap` 0.51 brings numba and llvmlite (about 190 MB) and about 7 s of
CPU at import, fails its own additivity check on HistGradientBoostingClassifier, needs about a
minute for 500 rows of the 200-tree forest, and explains one-hot columns, not the client's columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureImportance:
    """How much the score drops when one input column is shuffled (mean and sd over the repeats)."""

    feature: str
    mean: float
    std: float


@dataclass(frozen=True)
class GlobalExplanation:
    """Permutation importances of a model's raw input columns on held-out rows.

    Attributes:
        method: `permutation_importance` (scikit-learn).
        scoring: The score whose drop is measured (`roc_auc`, `roc_auc_ovr` or `accuracy`).
        rows: Rows scored per shuffle (a seeded subsample of the holdout when it is larger).
        repeats: Shuffles per column.
        seed: Seed of the subsamples and the shuffles.
        importances: One per input column, the most important first.
    """

    method: str
    scoring: str
    rows: int
    repeats: int
    seed: int
    importances: tuple[FeatureImportance, ...]

    def means(self) -> dict[str, float]:
        """Column -> mean importance, the most important first."""
        return {i.feature: i.mean for i in self.importances}

    def as_dict(self) -> dict[str, Any]:
        """The explanation as JSON-ready data (`explanations.json`)."""
        return asdict(self)


def explain_globally(
    model: Any,
    holdout: pd.DataFrame,
    *,
    features: Sequence[str],
    target: str,
    max_rows: int,
    repeats: int,
    seed: int,
) -> GlobalExplanation:
    """Permutation importance of each input column, each shuffle scored on at most `max_rows` holdout rows.

    Args:
        model: A fitted classifier or Pipeline that predicts from `holdout[features]`.
        holdout: Held-out labelled rows, so importances measure what generalizes.
        features: The model's input columns.
        target: The label column.
        max_rows: Rows per shuffle (scikit-learn's `max_samples`; bounds the cost).
        repeats: Shuffles per column.
        seed: Seed of the subsamples and the shuffles.

    Returns:
        The importances, the most important first. ROC AUC (one-vs-rest for more classes) when the
        model gives probabilities and the rows hold two classes or more, accuracy otherwise.
    """
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    y = holdout[target].to_numpy()
    ranks = hasattr(model, "predict_proba") and len(np.unique(y)) > 1
    scoring = "accuracy" if not ranks else "roc_auc" if len(getattr(model, "classes_", ())) == 2 else "roc_auc_ovr"
    rows = min(max_rows, len(holdout))
    with threadpool_limits(limits=1):  # a bounded cost on a shared machine
        result: Any = permutation_importance(
            model,
            holdout.loc[:, list(features)],
            y,
            scoring=scoring,
            n_repeats=repeats,
            random_state=seed,
            max_samples=rows,
            n_jobs=1,
        )
    importances = sorted(
        (
            FeatureImportance(str(f), float(m), float(s))
            for f, m, s in zip(features, result.importances_mean, result.importances_std, strict=True)
        ),
        key=lambda i: (-i.mean, i.feature),
    )
    return GlobalExplanation("permutation_importance", scoring, rows, repeats, seed, tuple(importances))
