"""Training candidates: a successive-halving search per estimator family, and the best of the families.

Each family in `params.yaml` (`training.candidates.<family>`) is a grid of configurations. The
search fits every configuration on a small seeded subsample of the training part, keeps the best
`1/factor` by the validation metric, and gives the survivors `factor` times the rows, until one
configuration is left: it is fit on the top rung's rows (all training rows, or the family's
`max_rows`), and that fit is the family's model. Boosting stops early on its own internal split
where the estimator supports it (`early_stopping`), so its iterations are a budget too.

Everything is seeded and every fit runs on one thread, so the same data, params and code give
the same model to the last bit; the chosen configuration and its rows are all `train_candidate`
needs to refit it exactly (`make reproduce`).

scikit-learn's `HalvingGridSearchCV` runs the same schedule, but it either refits the winner on
train and validation together (`refit=True`, which spoils the validation score the families are
compared on) or keeps no fitted model (`refit=False`, so the winner is fit twice), and it has no
wall-clock guard; this module keeps the schedule and adds those.
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.lib.config import CandidateSpec, SearchParams
from ml_assets.lib.features import FeatureSpec

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline


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


def subsample_rows(n: int, rows: int | None, *, seed: int) -> np.ndarray:
    """The positions of the training rows a fit on `rows` rows uses, in their original order.

    The subsamples of one seed are nested (a larger one contains every smaller one), and asking
    for all rows (or more) gives all of them in order, so a family without a search trains on
    exactly the rows it always did.

    Args:
        n: Rows in the training part.
        rows: Rows wanted; None for all.
        seed: Seed of the permutation.

    Returns:
        Sorted row positions.
    """
    if rows is None or rows >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:rows])


def _iterations(estimator: Any) -> int | None:
    """The iterations a fitted estimator used (boosting rounds, solver steps, trees), if it says."""
    n_iter = getattr(estimator, "n_iter_", None)
    if n_iter is not None:
        return int(np.max(n_iter))
    trees = getattr(estimator, "estimators_", None)
    return len(trees) if trees is not None else None


def _rows(x: np.ndarray, y: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows at `positions` (no copy when they are all the rows, in order)."""
    return (x, y) if len(positions) == len(x) else (x[positions], y[positions])


def _fit(estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    from threadpoolctl import threadpool_limits

    # One thread per fit: candidates run in parallel processes, and OpenMP threads of several
    # processes spinning on two cores slow a fit down by orders of magnitude. Also bit-for-bit
    # reproducible whatever the machine's core count.
    with threadpool_limits(limits=1):
        return estimator.fit(x, y)


PARALLEL_MIN_ROWS = 20_000
"""Rungs on fewer rows fit their configurations one after the other: worker processes cost more."""


def _fit_and_score(
    estimator: Any, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, metric: str
) -> tuple[Any, float, float]:
    from ml_assets.lib.evaluation import classification_metrics

    started = time.perf_counter()
    fitted = _fit(estimator, x, y)
    score = classification_metrics(y_val, fitted.predict_proba(x_val), classes=list(fitted.classes_)).get(metric)
    return fitted, float(score), time.perf_counter() - started


def _fit_rung(
    estimators: list[Any],
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    metric: str,
    n_jobs: int,
) -> list[tuple[Any, float, float]]:
    """Fits and scores a rung's configurations on the rung's rows, in `n_jobs` worker processes when more than one.

    Each fit is single-threaded and seeded, so where it runs does not change a bit of the result;
    joblib shares the training matrix with the workers through a memory map instead of copying it.
    """
    if n_jobs <= 1:
        return [_fit_and_score(e, x, y, x_val, y_val, metric) for e in estimators]
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n_jobs, backend="loky")(
        delayed(_fit_and_score)(e, x, y, x_val, y_val, metric) for e in estimators
    )
    return list(results)  # type: ignore[arg-type]  # joblib's stubs type it as a generator of optionals


def train_candidate(
    train: pd.DataFrame,
    *,
    preprocessor: ColumnTransformer,
    spec: CandidateSpec,
    features: FeatureSpec,
    seed: int,
    rows: int | None = None,
) -> Pipeline:
    """Fits one configuration on the training split (or its seeded `rows`-row subsample).

    The preprocessing is not refit: it was fit once on the training split and every candidate
    shares it, so their comparison is fair. This is how `make reproduce` refits a chosen
    configuration, and the search's last fit is this same call.

    Args:
        train: The training split.
        preprocessor: The preprocessing, already fit on `train`.
        spec: The candidate pinned to one configuration (its `params`; `search` is ignored).
        features: The feature spec.
        seed: Seed of estimators that take a `random_state`, and of the subsample.
        rows: Rows to fit on (see `subsample_rows`); None for all.

    Returns:
        A Pipeline `preprocess -> model` that predicts from raw feature columns.
    """
    from sklearn.pipeline import Pipeline

    x = np.asarray(preprocessor.transform(train[list(features.features)]))
    y = train[features.target].to_numpy()
    estimator = _fit(build_estimator(spec, seed=seed), *_rows(x, y, subsample_rows(len(x), rows, seed=seed)))
    return Pipeline([("preprocess", preprocessor), ("model", estimator)])


@dataclass(frozen=True)
class Trial:
    """One configuration fit at one rung of the search: the budget it got and how it scored."""

    config: Mapping[str, Any]
    rung: int
    rows: int
    validation_rows: int
    score: float
    seconds: float
    iterations: int | None = None

    def as_record(self, *, searched: tuple[str, ...] = ()) -> dict[str, Any]:
        """A flat row for a leaderboard: the searched params, the budget and the score."""
        shown = {k: self.config[k] for k in searched} if searched else dict(self.config)
        return {
            "config": ", ".join(f"{k}={v}" for k, v in shown.items()) or "(fixed params)",
            "rung": self.rung,
            "rows": self.rows,
            "iterations": self.iterations if self.iterations is not None else "",
            "validation_rows": self.validation_rows,
            "score": round(self.score, 4),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class SearchResult:
    """A family's winner, the rows it was fit on, and every trial of the search."""

    model: Pipeline
    config: Mapping[str, Any]
    rows: int
    trials: tuple[Trial, ...]
    budget_exhausted: bool
    seconds: float


def rung_plan(n_configs: int, *, top_rows: int, schedule: SearchParams) -> list[tuple[int, int]]:
    """The successive-halving schedule: (configurations, rows) per rung, ending with one on `top_rows`.

    Args:
        n_configs: Configurations in the family's grid.
        top_rows: Rows of the last rung (the winner's fit).
        schedule: Factor and the smallest rung's rows.

    Returns:
        One (configurations, rows) pair per rung; a single configuration gives one rung. Rungs
        that the `min_rows` floor would give the same rows are merged into the first of them.
    """
    survivors = [n_configs]
    while survivors[-1] > 1:
        survivors.append(math.ceil(survivors[-1] / schedule.factor))
    last = len(survivors) - 1
    floor = min(schedule.min_rows, top_rows)
    plan: list[tuple[int, int]] = []
    for k, n in enumerate(survivors):
        rows = max(floor, top_rows // schedule.factor ** (last - k))
        if plan and plan[-1][1] == rows:
            continue  # the same rows again would refit the same models: the ranking already narrows it
        plan.append((n, rows))
    return plan


def search_candidate(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    *,
    preprocessor: ColumnTransformer,
    spec: CandidateSpec,
    features: FeatureSpec,
    metric: str,
    schedule: SearchParams,
    seed: int,
    log: Any = None,
) -> SearchResult:
    """Successive halving over one family's configurations on growing subsamples of the training part.

    Args:
        train: The training split.
        validation: The validation split (rungs are scored on a seeded subsample of it).
        preprocessor: The preprocessing, already fit on `train` (applied once, not per fit).
        spec: The family and its search space.
        features: The feature spec.
        metric: The validation metric that ranks configurations (higher is better).
        schedule: Factor, rows and the wall-clock guard (`training.search` in params.yaml).
        seed: Seed of the estimators and of the subsamples.
        log: Optional callable taking one progress line.

    Returns:
        The winner fit on its rows, and every trial. When the next rung would end past
        `schedule.budget_seconds`, the search stops and the best of the last finished rung
        wins (`budget_exhausted`); its rows are recorded, so it is reproducible all the same.
    """
    from sklearn.pipeline import Pipeline

    started = time.perf_counter()
    columns = list(features.features)
    x_train = np.asarray(preprocessor.transform(train[columns]))
    y_train = train[features.target].to_numpy()
    n_val = len(validation)
    val_positions = subsample_rows(n_val, schedule.validation_rows, seed=seed + 1)
    x_val = np.asarray(preprocessor.transform(validation[columns].iloc[val_positions]))
    y_val = validation[features.target].to_numpy()[val_positions]

    top_rows = min(len(x_train), spec.max_rows or len(x_train), schedule.max_rows or len(x_train))
    configs = spec.configurations()
    plan = rung_plan(len(configs), top_rows=top_rows, schedule=schedule)
    trials: list[Trial] = []
    alive = list(range(len(configs)))
    best: tuple[int, Any, int] | None = None  # (config index, fitted estimator, rows)
    exhausted = False
    previous_seconds = 0.0
    for rung, (n_configs, rows) in enumerate(plan):
        alive = alive[:n_configs]
        if rung and schedule.budget_seconds is not None:
            previous = plan[rung - 1]
            expected = previous_seconds * (n_configs / previous[0]) * (rows / previous[1])
            if time.perf_counter() - started + expected > schedule.budget_seconds:
                exhausted = True
                if log:
                    log(
                        f"`{spec.name}`: rung {rung} ({n_configs} x {rows} rows, ~{expected:.0f} s) would pass the "
                        f"{schedule.budget_seconds:.0f} s budget; the best of rung {rung - 1} wins"
                    )
                break
        positions = subsample_rows(len(x_train), rows, seed=seed)
        rung_started = time.perf_counter()
        jobs = schedule.n_jobs if len(alive) > 1 and len(positions) >= PARALLEL_MIN_ROWS else 1
        estimators = [build_estimator(spec.with_params(configs[index]), seed=seed) for index in alive]
        fits = _fit_rung(estimators, *_rows(x_train, y_train, positions), x_val, y_val, metric=metric, n_jobs=jobs)
        scored: list[tuple[float, int]] = []
        for index, (estimator, score, seconds) in zip(alive, fits, strict=True):
            trials.append(
                Trial(
                    config=configs[index],
                    rung=rung,
                    rows=len(positions),
                    validation_rows=len(y_val),
                    score=score,
                    seconds=seconds,
                    iterations=_iterations(estimator),
                )
            )
            if not scored or score > scored[0][0]:
                best = (index, estimator, len(positions))
            scored.append((score, index))
            scored.sort(key=lambda item: -item[0])  # stable: ties keep grid order
        previous_seconds = time.perf_counter() - rung_started
        if log:
            log(
                f"`{spec.name}`: rung {rung}: {len(alive)} configuration(s) x {len(positions)} rows "
                f"in {previous_seconds:.1f} s, best {metric} {scored[0][0]:.4f}"
            )
        alive = [index for _, index in scored]
    assert best is not None  # the first rung always runs
    index, estimator, rows_fit = best
    return SearchResult(
        model=Pipeline([("preprocess", preprocessor), ("model", estimator)]),
        config=configs[index],
        rows=rows_fit,
        trials=tuple(trials),
        budget_exhausted=exhausted,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class CandidateModel:
    """A trained candidate (a family's winner) as logged to MLflow, with its search."""

    name: str
    model: Any
    run_id: str
    model_uri: str
    fingerprint: str
    validation_metrics: dict[str, float]
    reused: bool
    config: Mapping[str, Any] = field(default_factory=dict)
    rows: int | None = None
    trials: tuple[Trial, ...] = ()
    budget_exhausted: bool = False


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
