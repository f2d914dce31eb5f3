"""Batch inference as pure functions: score a frame with a fitted classifier and summarize the scores.

The champion is a scikit-learn Pipeline that takes raw feature columns (its preprocessing travels
inside it), so scoring a validated batch needs only the model, the batch and its id columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PREDICTED_CLASS = "predicted_class"
MODEL_VERSION = "model_version"
PROBA_PREFIX = "proba_"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def predictions_path(folder: Path, batch: str, *, version: str | int) -> Path:
    """Return where the scores of `batch` by model version `version` are written.

    The version is part of the name, so a new champion never overwrites an older one's scores.

    Args:
        folder: The predictions folder.
        batch: The batch's partition key (its landed file name).
        version: The registered model version that scored it.

    Returns:
        `<folder>/<batch>.v<version>.parquet`.
    """
    return folder / f"{batch}.v{version}.parquet"


def model_features(model: Any, frame: pd.DataFrame) -> list[str]:
    """Return the columns of `frame` the model was fit on, in fit order.

    Args:
        model: A fitted scikit-learn estimator or pipeline that was fit on a DataFrame.
        frame: The rows to score.

    Returns:
        The model's input columns (`feature_names_in_`).

    Raises:
        ValueError: The model does not record its input columns, or `frame` lacks some of them.
    """
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError("the model does not record its input columns (`feature_names_in_`); fit it on a DataFrame")
    features = [str(c) for c in names]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the model's input column(s) {', '.join(f'`{c}`' for c in missing)}")
    return features


def predict_frame(
    model: Any, frame: pd.DataFrame, *, id_columns: Sequence[str], model_version: str | int
) -> pd.DataFrame:
    """Score each row of `frame` and return one row of predictions per input row, in input order.

    Args:
        model: A fitted classifier with `predict_proba`, `classes_` and `feature_names_in_`.
        frame: The rows to score; extra columns (the target, lineage) are ignored.
        id_columns: Columns copied through to identify each row; those absent from `frame` are skipped.
        model_version: The registered version of `model`, recorded on every row.

    Returns:
        The id columns, `predicted_class`, one `proba_<class>` column per class (in `classes_`
        order, the last being the positive class of a binary model) and `model_version`.

    Raises:
        ValueError: `frame` lacks an input column of the model, or an id column clashes with an output column.
    """
    features = model_features(model, frame)
    classes = list(model.classes_)
    proba_columns = [f"{PROBA_PREFIX}{c}" for c in classes]
    ids = [c for c in id_columns if c in frame.columns]
    clashes = sorted(set(ids) & {PREDICTED_CLASS, MODEL_VERSION, *proba_columns})
    if clashes:
        raise ValueError(f"id column(s) {', '.join(f'`{c}`' for c in clashes)} clash with prediction columns")
    out = pd.DataFrame(frame.loc[:, ids]).reset_index(drop=True)
    if frame.empty:
        proba = np.empty((0, len(classes)))
    else:
        proba = np.asarray(model.predict_proba(frame[features]), dtype=float)
    out[PREDICTED_CLASS] = pd.Series(np.asarray(classes)[np.argmax(proba, axis=1)], dtype=np.asarray(classes).dtype)
    for column, values in zip(proba_columns, proba.T, strict=True):
        out[column] = values
    out[MODEL_VERSION] = pd.Series([int(model_version)] * len(out), dtype="int64")
    return out


@dataclass(frozen=True)
class ScoreSummary:
    """How one batch was scored: positive-class probability quantiles and predicted class shares."""

    rows: int
    positive_class: str
    mean_probability: float
    quantiles: dict[str, float]
    class_shares: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON-ready values."""
        return {
            "rows": self.rows,
            "positive_class": self.positive_class,
            "mean_probability": self.mean_probability,
            "quantiles": dict(self.quantiles),
            "class_shares": dict(self.class_shares),
        }


def summarize_predictions(predictions: pd.DataFrame, *, quantiles: Sequence[float] = QUANTILES) -> ScoreSummary:
    """Summarize a frame from `predict_frame`.

    Args:
        predictions: The output of `predict_frame`.
        quantiles: The quantiles of the positive-class probability to report, each in [0, 1].

    Returns:
        The summary; the positive class is the last `proba_` column. An empty frame gives NaN
        probabilities and no class shares.

    Raises:
        ValueError: The frame has no `proba_` columns, or a quantile is outside [0, 1].
    """
    proba_columns = [c for c in predictions.columns if str(c).startswith(PROBA_PREFIX)]
    if not proba_columns:
        raise ValueError(f"the predictions have no `{PROBA_PREFIX}<class>` columns; build them with predict_frame")
    bad = [q for q in quantiles if not 0.0 <= q <= 1.0]
    if bad:
        raise ValueError(f"quantiles must lie in [0, 1], got {bad}")
    positive = predictions[proba_columns[-1]].astype(float)
    empty = positive.empty
    shares = predictions[PREDICTED_CLASS].value_counts(normalize=True).sort_index() if not empty else pd.Series()
    return ScoreSummary(
        rows=len(predictions),
        positive_class=str(proba_columns[-1]).removeprefix(PROBA_PREFIX),
        mean_probability=float("nan") if empty else round(float(positive.mean()), 6),
        quantiles={
            f"p{round(q * 100):02d}": float("nan") if empty else round(float(positive.quantile(q)), 6)
            for q in quantiles
        },
        class_shares={str(k): round(float(v), 6) for k, v in shares.items()},
    )


def score_batches(
    model: Any,
    *,
    validated_dir: Path,
    out_dir: Path,
    batches: Sequence[str],
    id_columns: Sequence[str],
    model_version: str | int,
) -> dict[str, ScoreSummary]:
    """Scores each validated batch with `model` into `<out_dir>/<batch>.v<version>.parquet` (atomic writes).

    Args:
        model: The champion.
        validated_dir: Where the validated copies live.
        out_dir: The predictions folder.
        batches: Partition keys; a batch without a validated copy (quarantined) is skipped.
        id_columns: Copied through to identify rows.
        model_version: The champion's version, recorded on every row and in the file name.

    Returns:
        Batch -> the summary of its scores.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for batch in batches:
        source = validated_dir / f"{batch}.parquet"
        if not source.is_file():
            continue
        frame = predict_frame(model, pd.read_parquet(source), id_columns=id_columns, model_version=model_version)
        out = predictions_path(out_dir, batch, version=model_version)
        tmp = out.with_name(f".{out.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(out)  # a reader never sees half a file
        summaries[batch] = summarize_predictions(frame)
    return summaries
