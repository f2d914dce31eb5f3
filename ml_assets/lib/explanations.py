"""Global explanations of a model: permutation importance of each raw input column.

Why not SHAP: `shap` 0.51 installs from PyPI for this Python and numpy, but it brings numba and
llvmlite (about 190 MB), its import costs about 7 s of CPU, its TreeExplainer fails its own
additivity check on scikit-learn's HistGradientBoostingClassifier (one of our candidates), and it
takes about a minute for 500 rows on the 200-tree random forest (measured on this project's
machines). It would also explain the one-hot columns inside the pipeline, not the columns a client
sends. `sklearn.inspection.permutation_importance` works for every estimator through the whole
pipeline, on raw columns, in about a second on a bounded sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureImportance:
    """How much the score drops when one input column is shuffled."""

    feature: str
    mean: float
    std: float


@dataclass(frozen=True)
class GlobalExplanation:
    """Permutation importances of a model's raw input columns on a sample of the holdout.

    Attributes:
        method: `permutation_importance` (scikit-learn).
        scoring: The score whose drop is measured (`roc_auc`, `roc_auc_ovr` or `accuracy`).
        rows: Holdout rows used.
        repeats: Shuffles per column.
        seed: Seed of the sample and the shuffles.
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


def stratified_sample(frame: pd.DataFrame, *, target: str, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, each class in its holdout share, deterministically from `seed`.

    Args:
        frame: Labelled rows.
        target: The label column.
        max_rows: The most rows to keep.
        seed: Seed of the draw.

    Returns:
        The sample (all rows when there are no more than `max_rows`), in the frame's order.
    """
    if len(frame) <= max_rows:
        return frame
    fraction = max_rows / len(frame)
    sample = frame.groupby(target, group_keys=False).sample(frac=fraction, random_state=seed)
    return frame.loc[frame.index.isin(sample.index)]


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
    """Permutation importance of each input column on a stratified sample of the holdout.

    Args:
        model: A fitted classifier or Pipeline that predicts from `holdout[features]`.
        holdout: Held-out labelled rows, so importances measure what generalizes.
        features: The model's input columns.
        target: The label column.
        max_rows: The most rows to use (bounds the cost: `len(features) * repeats` predictions of them).
        repeats: Shuffles per column.
        seed: Seed of the sample and the shuffles.

    Returns:
        The importances, the most important first.
    """
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    sample = stratified_sample(holdout, target=target, max_rows=max_rows, seed=seed)
    y = sample[target].to_numpy()
    n_classes = len(np.unique(y))
    scoring = "accuracy" if n_classes < 2 else "roc_auc" if len(getattr(model, "classes_", ())) == 2 else "roc_auc_ovr"
    with threadpool_limits(limits=1):  # a bounded cost on a shared machine
        result: Any = permutation_importance(
            model, sample.loc[:, list(features)], y, scoring=scoring, n_repeats=repeats, random_state=seed, n_jobs=1
        )
    importances = sorted(
        (
            FeatureImportance(str(f), float(m), float(s))
            for f, m, s in zip(features, result.importances_mean, result.importances_std, strict=True)
        ),
        key=lambda i: (-i.mean, i.feature),
    )
    return GlobalExplanation(
        method="permutation_importance",
        scoring=scoring,
        rows=len(sample),
        repeats=repeats,
        seed=seed,
        importances=tuple(importances),
    )
