"""Reproduce a registered model from its recorded data version and params.

The same functions the assets call, in the same order: split the snapshot, fit the preprocessing
on the training part, refit the configuration the candidate's search chose on the rows it got,
score it on the holdout. Everything is seeded
and fits run on one thread, so the same code gives the same metrics to the last bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml_assets.lib.config import Params
from ml_assets.lib.evaluation import ClassificationMetrics, score_model
from ml_assets.lib.features import fit_preprocessor, infer_feature_spec, split_dataset
from ml_assets.lib.training import train_candidate


@dataclass(frozen=True)
class Reproduction:
    """A retrained model and its holdout metrics."""

    model: Any
    metrics: ClassificationMetrics


@dataclass(frozen=True)
class MetricComparison:
    """Recorded against reproduced metrics."""

    recorded: Mapping[str, float]
    reproduced: Mapping[str, float]

    @property
    def identical(self) -> bool:
        """True when every recorded metric was reproduced exactly."""
        return all(self.reproduced.get(k) == v for k, v in self.recorded.items())

    def rows(self) -> list[tuple[str, float, float]]:
        """(metric, recorded, reproduced) in name order."""
        return [(k, v, self.reproduced.get(k, float("nan"))) for k, v in sorted(self.recorded.items())]


def retrain(
    snapshot: pd.DataFrame,
    params: Params,
    *,
    candidate: str,
    config: Mapping[str, Any] | None = None,
    rows: int | None = None,
) -> Reproduction:
    """Refits the configuration the search chose for `candidate` on `snapshot`, exactly as the graph did.

    The search itself is not rerun: its winner's configuration and rows were recorded on the
    MLflow run, and the search's last fit is `train_candidate` with them.

    Args:
        snapshot: The training snapshot the model was trained on.
        params: The params recorded with the model.
        candidate: The candidate's name in `params.training.candidates`.
        config: The chosen configuration (the run's `ml_assets.config` tag); None for the
            family's fixed `params` (runs from before the search).
        rows: The rows it was fit on (the run's `ml_assets.rows_fit` tag); None for all.

    Returns:
        The model and its metrics on the holdout part.
    """
    data = params.data
    spec = infer_feature_spec(
        snapshot, target=data.target, id_columns=data.id_columns, feature_types=data.feature_types
    )
    split = split_dataset(
        snapshot,
        target=data.target,
        test_size=params.split.test_size,
        validation_size=params.split.validation_size,
        seed=params.split.seed,
        id_columns=data.id_columns,
    )
    preprocessor = fit_preprocessor(split.train, spec)
    family = params.training.candidate(candidate)
    model = train_candidate(
        split.train,
        preprocessor=preprocessor,
        spec=family.with_params(config if config is not None else family.params),
        features=spec,
        seed=params.split.seed,
        rows=rows,
    )
    return Reproduction(model=model, metrics=score_model(model, split.test, features=spec.features, target=data.target))


def compare_metrics(recorded: Mapping[str, float], reproduced: ClassificationMetrics) -> MetricComparison:
    """Lines up the recorded `test_*` metrics with the reproduced ones.

    Args:
        recorded: Metric name (with or without the `test_` prefix) -> recorded value.
        reproduced: The reproduced holdout metrics.

    Returns:
        The comparison.
    """
    clean = {k.removeprefix("test_"): float(v) for k, v in recorded.items()}
    scalars = reproduced.scalars()
    return MetricComparison(recorded=clean, reproduced={k: scalars[k] for k in clean if k in scalars})
