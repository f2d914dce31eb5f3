"""Training candidates.

Build an estimator from its `params.yaml` spec and fit it behind the already-fitted preprocessing,
returning one scikit-learn Pipeline that serving can call on raw rows.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml_assets.lib.config import CandidateSpec
from ml_assets.lib.features import FeatureSpec

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class TrainedCandidate:
    """A fitted candidate and how it scored on the validation split."""

    name: str
    model: Pipeline
    validation_metrics: dict[str, float]


def build_estimator(spec: CandidateSpec, *, seed: int) -> Any:
    """Instantiates the estimator a candidate names, seeding it when it takes a `random_state`.

    Args:
        spec: The candidate, e.g. `sklearn.ensemble.RandomForestClassifier` with its params.
        seed: Used as `random_state` unless the params set one.

    Returns:
        An unfitted scikit-learn classifier.

    Raises:
        ValueError: The dotted path does not import, or the params do not fit the estimator.
    """
    module_name, _, class_name = spec.estimator.rpartition(".")
    try:
        estimator_cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"candidate `{spec.name}`: estimator `{spec.estimator}` cannot be imported; "
            "use a dotted path such as sklearn.ensemble.RandomForestClassifier"
        ) from error
    params = dict(spec.params)
    if "random_state" in inspect.signature(estimator_cls).parameters:
        params.setdefault("random_state", seed)
    try:
        return estimator_cls(**params)
    except TypeError as error:
        raise ValueError(
            f"candidate `{spec.name}`: params.yaml params do not fit `{spec.estimator}`: {error}"
        ) from error


def train_candidate(
    train: pd.DataFrame,
    *,
    preprocessor: ColumnTransformer,
    spec: CandidateSpec,
    features: FeatureSpec,
    seed: int,
) -> Pipeline:
    """Fits one candidate on the training split behind the fitted preprocessing.

    The preprocessing is not refit: it was fit once on the training split and every candidate
    shares it, so their comparison is fair.

    Args:
        train: The training split.
        preprocessor: The preprocessing, already fit on `train`.
        spec: The candidate.
        features: The feature spec.
        seed: Seed for estimators that take a `random_state`.

    Returns:
        A Pipeline `preprocess -> model` that predicts from raw feature columns.
    """
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    estimator = build_estimator(spec, seed=seed)
    # One thread per fit: candidates already run in parallel processes, and OpenMP threads of
    # several processes spinning on two cores slow a fit down by orders of magnitude.
    with threadpool_limits(limits=1):
        estimator.fit(preprocessor.transform(train[list(features.features)]), train[features.target])
    return Pipeline([("preprocess", preprocessor), ("model", estimator)])


@dataclass(frozen=True)
class CandidateModel:
    """A trained candidate as logged to MLflow."""

    name: str
    model: Any
    run_id: str
    model_uri: str
    fingerprint: str
    validation_metrics: dict[str, float]
    reused: bool


def pick_best(candidates: list[CandidateModel], *, metric: str) -> CandidateModel:
    """Returns the candidate with the highest validation `metric` (ties go to the first name).

    Args:
        candidates: The trained candidates.
        metric: A validation metric where higher is better (`neg_log_loss` for log loss).

    Returns:
        The winner.
    """
    if not candidates:
        raise ValueError("no candidates to choose from; declare some under `training.candidates` in params.yaml")
    missing = [c.name for c in candidates if metric not in c.validation_metrics]
    if missing:
        raise ValueError(f"candidates {missing} have no validation metric `{metric}`")
    return max(sorted(candidates, key=lambda c: c.name), key=lambda c: c.validation_metrics[metric])
