"""Model evaluation as pure functions on arrays and frames.

Classification metrics, a paired bootstrap of a metric difference, single-row latency, and
prediction shares.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

Labels = Sequence[Any] | np.ndarray | pd.Series
"""True labels or predictions: a list, an array or a pandas Series."""


@dataclass(frozen=True)
class ClassificationMetrics:
    """Held-out metrics of one model on one dataset."""

    accuracy: float
    f1: float
    roc_auc: float
    log_loss: float
    confusion_matrix: tuple[tuple[int, ...], ...]
    classes: tuple[Any, ...]
    n_rows: int

    def get(self, name: str) -> float:
        """Returns a metric by name, `neg_log_loss` included (so that higher is always better)."""
        if name == "neg_log_loss":
            return -self.log_loss
        value = getattr(self, name)
        if not isinstance(value, float):
            raise ValueError(f"`{name}` is not a scalar metric")
        return value

    def scalars(self) -> dict[str, float]:
        """The scalar metrics as a flat mapping (for MLflow and Dagster metadata)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, float)}


def classification_metrics(y_true: Labels, proba: np.ndarray, *, classes: Sequence[Any]) -> ClassificationMetrics:
    """Computes accuracy, F1, ROC AUC, log loss and the confusion matrix.

    Binary problems use the F1 of the last class (the positive one) and the ROC AUC of its
    probability; multiclass problems use macro F1 and one-vs-rest ROC AUC.

    Args:
        y_true: True labels.
        proba: Predicted probabilities, one column per class in `classes` order.
        classes: The model's classes (`model.classes_`).

    Returns:
        The metrics.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score

    y = np.asarray(y_true)
    labels = np.asarray(classes)
    predicted = labels[np.argmax(proba, axis=1)]
    binary = len(labels) == 2
    if binary:
        f1 = f1_score(y, predicted, pos_label=labels[1], zero_division=0.0)
        auc = roc_auc_score(y == labels[1], proba[:, 1]) if len(np.unique(y)) > 1 else float("nan")
    else:
        f1 = f1_score(y, predicted, average="macro", labels=labels, zero_division=0.0)
        auc = roc_auc_score(y, proba, multi_class="ovr", labels=labels) if len(np.unique(y)) > 1 else float("nan")
    matrix = confusion_matrix(y, predicted, labels=labels)
    return ClassificationMetrics(
        accuracy=float(accuracy_score(y, predicted)),
        f1=float(f1),
        roc_auc=float(auc),
        log_loss=float(log_loss(y, np.clip(proba, 1e-15, 1), labels=labels)),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in matrix),
        classes=tuple(c.item() if hasattr(c, "item") else c for c in labels),
        n_rows=len(y),
    )


def score_model(model: Any, df: pd.DataFrame, *, features: Sequence[str], target: str) -> ClassificationMetrics:
    """Scores a fitted classifier on a labelled frame.

    Args:
        model: Anything with `predict_proba` and `classes_`.
        df: Rows with the feature columns and the target.
        features: Feature columns, in training order.
        target: The label column.

    Returns:
        The metrics.
    """
    proba = np.asarray(model.predict_proba(df.loc[:, list(features)]))
    return classification_metrics(df[target], proba, classes=list(model.classes_))


@dataclass(frozen=True)
class BootstrapInterval:
    """A paired bootstrap confidence interval of `metric(a) - metric(b)`."""

    metric: str
    difference: float
    lower: float
    upper: float
    confidence: float
    samples: int


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank formula (ties get average ranks)."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auc_difference(
    y_true: Labels,
    score_a: np.ndarray,
    score_b: np.ndarray,
    *,
    positive: Any,
    samples: int,
    confidence: float,
    seed: int,
) -> BootstrapInterval:
    """Paired bootstrap of `AUC(a) - AUC(b)` on the same rows.

    Both models are scored on each resample of the same rows, so the interval reflects the
    difference between the models, not the noise of the holdout.

    Args:
        y_true: True labels of the holdout.
        score_a: Positive-class scores of model a (the candidate).
        score_b: Positive-class scores of model b (the champion).
        positive: The positive label.
        samples: Number of bootstrap resamples.
        confidence: Two-sided confidence level, e.g. 0.95.
        seed: Seed of the resampling.

    Returns:
        The observed difference and its percentile interval.
    """
    y = np.asarray(y_true) == positive
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    rng = np.random.default_rng(seed)
    differences = np.empty(samples)
    for i in range(samples):
        idx = rng.integers(0, len(y), len(y))
        differences[i] = _binary_auc(y[idx], a[idx]) - _binary_auc(y[idx], b[idx])
    differences = differences[np.isfinite(differences)]
    tail = (1 - confidence) / 2 * 100
    return BootstrapInterval(
        metric="roc_auc",
        difference=_binary_auc(y, a) - _binary_auc(y, b),
        lower=float(np.percentile(differences, tail)),
        upper=float(np.percentile(differences, 100 - tail)),
        confidence=confidence,
        samples=len(differences),
    )


@dataclass(frozen=True)
class LatencyStats:
    """Single-row prediction latency in milliseconds."""

    p50_ms: float
    p95_ms: float
    max_ms: float
    samples: int


def measure_latency(model: Any, rows: pd.DataFrame, *, samples: int) -> LatencyStats:
    """Times `predict_proba` on one row at a time, as an online caller would.

    Args:
        model: A fitted classifier.
        rows: Feature rows to draw from (cycled when fewer than `samples`).
        samples: How many single-row calls to time.

    Returns:
        Percentiles of the call time.
    """
    if rows.empty:
        raise ValueError("cannot measure latency on an empty frame")
    model.predict_proba(rows.iloc[[0]])  # warm-up: lazy imports and caches
    timings = np.empty(samples)
    for i in range(samples):
        row = rows.iloc[[i % len(rows)]]
        start = time.perf_counter()
        model.predict_proba(row)
        timings[i] = (time.perf_counter() - start) * 1000
    return LatencyStats(
        p50_ms=float(np.percentile(timings, 50)),
        p95_ms=float(np.percentile(timings, 95)),
        max_ms=float(timings.max()),
        samples=samples,
    )


def prediction_shares(predictions: Labels, *, classes: Sequence[Any]) -> dict[str, float]:
    """Returns the share of predictions that went to each class (0 for a class never predicted)."""
    values = pd.Series(predictions)
    counts = values.value_counts(normalize=True)
    return {str(c): float(counts.get(c, 0.0) or 0.0) for c in classes}


@dataclass(frozen=True)
class CandidateEvaluation:
    """Everything the model gates need, measured on the frozen holdout."""

    metrics: ClassificationMetrics
    baseline: ClassificationMetrics
    champion: ClassificationMetrics | None
    champion_version: str | None
    champion_note: str
    comparison: BootstrapInterval | None
    latency: LatencyStats
    null_predictions: int
    shares: dict[str, float]


def evaluate_candidate(
    model: Any,
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: Sequence[str],
    target: str,
    champion: Any | None,
    champion_version: str | None,
    bootstrap_samples: int,
    confidence: float,
    latency_samples: int,
    seed: int,
) -> CandidateEvaluation:
    """Scores a candidate, a DummyClassifier baseline and the current champion on the same holdout.

    Args:
        model: The trained candidate (a pipeline over raw feature columns).
        train: The training split (the baseline learns the class prior from it).
        holdout: The frozen test split.
        features: Feature columns.
        target: The label column.
        champion: The registry's current champion model, or None.
        champion_version: Its registry version, for messages.
        bootstrap_samples: Resamples for the champion comparison.
        confidence: Confidence level of the comparison interval.
        latency_samples: Single-row predictions to time.
        seed: Seed of the bootstrap.

    Returns:
        The evaluation.
    """
    from sklearn.dummy import DummyClassifier

    columns = list(features)
    x_holdout, y_holdout = holdout.loc[:, columns], holdout[target]
    proba = model.predict_proba(x_holdout)
    classes = list(model.classes_)
    metrics = classification_metrics(y_holdout, proba, classes=classes)

    dummy = DummyClassifier(strategy="prior").fit(train.loc[:, columns], train[target])
    baseline = classification_metrics(y_holdout, dummy.predict_proba(x_holdout), classes=list(dummy.classes_))

    champion_metrics: ClassificationMetrics | None = None
    comparison: BootstrapInterval | None = None
    note = "no champion yet"
    if champion is not None:
        try:
            # all columns: the champion may have been trained on other features than the candidate
            champion_proba = champion.predict_proba(holdout.drop(columns=[target]))
            champion_metrics = classification_metrics(y_holdout, champion_proba, classes=list(champion.classes_))
        except Exception as error:
            note = f"champion v{champion_version} cannot score the current holdout ({error}); comparison skipped"
        else:
            note = f"compared with champion v{champion_version} on the same holdout"
            if len(classes) == 2 and list(champion.classes_) == classes:
                comparison = bootstrap_auc_difference(
                    y_holdout,
                    proba[:, 1],
                    champion_proba[:, 1],
                    positive=classes[1],
                    samples=bootstrap_samples,
                    confidence=confidence,
                    seed=seed,
                )
    predictions = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    null_predictions = int((~np.isfinite(proba)).any(axis=1).sum())
    return CandidateEvaluation(
        metrics=metrics,
        baseline=baseline,
        champion=champion_metrics,
        champion_version=champion_version,
        champion_note=note,
        comparison=comparison,
        latency=measure_latency(model, x_holdout, samples=latency_samples),
        null_predictions=null_predictions,
        shares=prediction_shares(predictions, classes=classes),
    )
