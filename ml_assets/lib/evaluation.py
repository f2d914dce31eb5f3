"""Model evaluation as pure functions on arrays and frames.

Classification metrics, the comparison with the champion (a paired bootstrap of the AUC difference,
`lib/paired_bootstrap.py`), single-row latency, prediction shares, and (through `lib/slices.py` and
`lib/explanations.py`) slices and permutation importances.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.lib.paired_bootstrap import Labels, PairedDifference, paired_auc_difference

if TYPE_CHECKING:
    from ml_assets.lib.explanations import GlobalExplanation
    from ml_assets.lib.slices import SliceOptions, SliceReport


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
class LatencyStats:
    """Single-row prediction cost: CPU time per row (the gated figure) and wall-clock percentiles.

    Attributes:
        cpu_ms_per_row: Median over repeats of the CPU time of one single-row call. CPU time does
            not grow when other processes take the cores, so the same model gets the same verdict
            on a busy machine.
        p50_ms: Wall-clock median of one call (informational).
        p95_ms: Wall-clock 95th percentile of one call (informational).
        samples: Calls timed.
    """

    cpu_ms_per_row: float
    p50_ms: float
    p95_ms: float
    samples: int


def measure_latency(model: Any, rows: pd.DataFrame, *, samples: int, repeats: int = 5) -> LatencyStats:
    """Times `predict_proba` on one row at a time, as an online caller would, after a warm-up.

    Args:
        model: A fitted classifier.
        rows: Feature rows to draw from (cycled when fewer than `samples`).
        samples: How many single-row calls to time in all.
        repeats: The calls are split into this many repeats; the CPU figure is their median.

    Returns:
        CPU time per row and wall-clock percentiles.
    """
    from threadpoolctl import threadpool_limits

    single = [rows.iloc[[i % len(rows)]] for i in range(max(samples, repeats))]
    per_repeat = np.array_split(np.arange(len(single)), repeats)
    wall = np.empty(len(single))
    cpu = []
    with threadpool_limits(limits=1):  # one thread: process CPU time is then the call's own cost
        model.predict_proba(single[0])  # warm-up: lazy imports and caches
        for chunk in per_repeat:
            started_cpu = time.process_time()
            for i in chunk:
                started = time.perf_counter()
                model.predict_proba(single[i])
                wall[i] = (time.perf_counter() - started) * 1000
            cpu.append((time.process_time() - started_cpu) * 1000 / len(chunk))
    return LatencyStats(
        cpu_ms_per_row=float(np.median(cpu)),
        p50_ms=float(np.percentile(wall, 50)),
        p95_ms=float(np.percentile(wall, 95)),
        samples=len(single),
    )


def prediction_shares(predictions: Labels, *, classes: Sequence[Any]) -> dict[str, float]:
    """Returns the share of predictions that went to each class (0 for a class never predicted)."""
    values = pd.Series(predictions)
    counts = values.value_counts(normalize=True)
    return {str(c): float(counts.get(c, 0.0) or 0.0) for c in classes}


@dataclass(frozen=True)
class ChampionComparison:
    """The candidate against the champion it would replace, on the same holdout rows.

    Attributes:
        champion_version: The champion version compared with; None when there is no champion.
        difference: The paired bootstrap of candidate minus champion; None when not compared.
        blocker: Why no comparison could be made (champion unloadable, classes or schema changed);
            a blocked comparison never lets automation promote.
    """

    champion_version: str | None
    difference: PairedDifference | None = None
    blocker: str | None = None

    @property
    def note(self) -> str:
        """One line for logs and metadata."""
        if self.champion_version is None:
            return "no champion yet"
        if self.blocker:
            return f"not compared with champion v{self.champion_version}: {self.blocker}"
        return f"compared with champion v{self.champion_version} on the same holdout"


def champion_probabilities(champion: Any, holdout: pd.DataFrame, *, target: str) -> np.ndarray:
    """The champion's probabilities on the holdout, from all its columns (it may use other features)."""
    return np.asarray(champion.predict_proba(holdout.drop(columns=[target])), dtype=float)


def compare_with_champion(
    candidate_proba: np.ndarray,
    *,
    classes: Sequence[Any],
    champion: Any,
    champion_version: str,
    holdout: pd.DataFrame,
    target: str,
    samples: int,
    confidence: float,
    seed: int,
) -> tuple[ChampionComparison, ClassificationMetrics | None]:
    """Scores the champion on the holdout and bootstraps the candidate's lead over it.

    Anything that stops a like-for-like comparison becomes the comparison's `blocker` instead of
    an exception, so the caller can register the candidate for a person to judge.

    Args:
        candidate_proba: The candidate's holdout probabilities, one column per class.
        classes: The candidate's classes.
        champion: The loaded champion model.
        champion_version: Its registry version.
        holdout: The holdout rows (all columns: the champion may use other features).
        target: The label column.
        samples: Bootstrap resamples.
        confidence: One-sided confidence level.
        seed: Bootstrap seed.

    Returns:
        The comparison and, when the champion could score the holdout, its metrics.
    """
    y = holdout[target]
    try:
        champion_proba = champion_probabilities(champion, holdout, target=target)
        champion_classes = list(champion.classes_)
    except Exception as error:  # any failure to score is a reason not to promote, never a pass
        blocker = f"it cannot score the current holdout ({type(error).__name__}: {error}); the schema may have changed"
        return ChampionComparison(champion_version, blocker=blocker), None
    if [str(c) for c in champion_classes] != [str(c) for c in classes]:
        blocker = f"the classes changed: the champion predicts {champion_classes}, the candidate {list(classes)}"
        return ChampionComparison(champion_version, blocker=blocker), None
    if not np.isfinite(champion_proba).all():
        return ChampionComparison(champion_version, blocker="it predicts NaN or infinite probabilities"), None
    champion_metrics = classification_metrics(y, champion_proba, classes=champion_classes)
    difference = paired_auc_difference(
        y, candidate_proba, champion_proba, classes=classes, samples=samples, confidence=confidence, seed=seed
    )
    if not (np.isfinite(difference.difference) and np.isfinite(difference.lower)):
        blocker = "the holdout lacks a class, so ROC AUC is undefined on it"
        return ChampionComparison(champion_version, blocker=blocker), champion_metrics
    return ChampionComparison(champion_version, difference=difference), champion_metrics


@dataclass(frozen=True)
class CandidateEvaluation:
    """Everything the model gates need, measured on the frozen holdout.

    `slices` holds the gate metrics per slice (None when slicing was not asked for) and
    `explanation` the permutation importances of the input columns (None when not asked for).
    """

    metrics: ClassificationMetrics
    baseline: ClassificationMetrics
    champion: ClassificationMetrics | None
    comparison: ChampionComparison
    latency: LatencyStats
    null_predictions: int
    shares: dict[str, float]
    slices: SliceReport | None = None
    explanation: GlobalExplanation | None = None


def evaluate_candidate(
    model: Any,
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: Sequence[str],
    target: str,
    champion: Any | None,
    champion_version: str | None,
    champion_blocker: str | None = None,
    bootstrap_samples: int,
    confidence: float,
    latency_samples: int,
    seed: int,
    slicing: SliceOptions | None = None,
    explanation_rows: int = 0,
    explanation_repeats: int = 5,
) -> CandidateEvaluation:
    """Scores a candidate, a DummyClassifier baseline and the current champion on the same holdout.

    Args:
        model: The trained candidate (a pipeline over raw feature columns).
        train: The training split (the baseline learns the class prior from it).
        holdout: The frozen test split.
        features: Feature columns.
        target: The label column.
        champion: The registry's current champion model; None when there is none or it failed to load.
        champion_version: Its registry version; None when there is no champion.
        champion_blocker: Why the champion could not be loaded, when it exists but `champion` is None.
        bootstrap_samples: Resamples for the champion comparison.
        confidence: One-sided confidence level of the comparison.
        latency_samples: Single-row predictions to time.
        seed: Seed of the bootstrap.
        slicing: The slices to score (the champion too, when the overall comparison was made); None for none.
        explanation_rows: Holdout rows per shuffle for the permutation importances; 0 for none.
        explanation_repeats: Shuffles per column for the permutation importances.

    Returns:
        The evaluation.
    """
    from sklearn.dummy import DummyClassifier

    from ml_assets.lib.explanations import explain_globally
    from ml_assets.lib.slices import evaluate_slices

    columns = list(features)
    x_holdout, y_holdout = holdout.loc[:, columns], holdout[target]
    proba = np.asarray(model.predict_proba(x_holdout), dtype=float)
    classes = list(model.classes_)
    metrics = classification_metrics(y_holdout, proba, classes=classes)

    dummy = DummyClassifier(strategy="prior").fit(train.loc[:, columns], train[target])
    baseline = classification_metrics(y_holdout, dummy.predict_proba(x_holdout), classes=list(dummy.classes_))

    champion_metrics = None
    if champion_version is None:
        comparison = ChampionComparison(None)
    elif champion is None:
        comparison = ChampionComparison(champion_version, blocker=champion_blocker or "it could not be loaded")
    else:
        comparison, champion_metrics = compare_with_champion(
            proba,
            classes=classes,
            champion=champion,
            champion_version=champion_version,
            holdout=holdout,
            target=target,
            samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
    slices = None
    if slicing is not None:
        comparable = comparison.difference is not None and champion is not None
        slices = evaluate_slices(
            holdout,
            target=target,
            proba=proba,
            classes=classes,
            champion_proba=champion_probabilities(champion, holdout, target=target) if comparable else None,
            options=slicing,
            samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
    explanation = None
    if explanation_rows > 0:
        explanation = explain_globally(
            model,
            holdout,
            features=columns,
            target=target,
            max_rows=explanation_rows,
            repeats=explanation_repeats,
            seed=seed,
        )
    predictions = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    return CandidateEvaluation(
        metrics=metrics,
        baseline=baseline,
        champion=champion_metrics,
        comparison=comparison,
        latency=measure_latency(model, x_holdout, samples=latency_samples),
        null_predictions=int((~np.isfinite(proba)).any(axis=1).sum()),
        shares=prediction_shares(predictions, classes=classes),
        slices=slices,
        explanation=explanation,
    )
