"""The successive-halving search: its schedule, determinism, reproducibility and budget guard."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ml_assets.lib import config as C
from ml_assets.lib import training as T
from ml_assets.lib.demo_data import generate_batch
from ml_assets.lib.features import fit_preprocessor, infer_feature_spec, split_dataset

LOGISTIC = "sklearn.linear_model.LogisticRegression"
FOREST = "sklearn.ensemble.RandomForestClassifier"


@pytest.fixture(scope="module")
def data():
    frame = generate_batch(n_rows=3000, seed=3, batch_date=dt.date(2026, 11, 1))
    spec = infer_feature_spec(frame, target="churned", id_columns=["customer_id"])
    split = split_dataset(
        frame, target="churned", test_size=0.2, validation_size=0.2, seed=1, id_columns=["customer_id"]
    )
    return split, spec, fit_preprocessor(split.train, spec)


def search(data, spec: C.CandidateSpec, **schedule):
    split, features, preprocessor = data
    return T.search_candidate(
        split.train,
        split.validation,
        preprocessor=preprocessor,
        spec=spec,
        features=features,
        metric="roc_auc",
        schedule=C.SearchParams(**{"factor": 3, "min_rows": 200, **schedule}),
        seed=5,
    )


@pytest.mark.parametrize(
    ("configs", "top", "plan"),
    [
        (1, 1800, [(1, 1800)]),
        (3, 1800, [(3, 600), (1, 1800)]),
        (9, 1800, [(9, 200), (3, 600), (1, 1800)]),
        (9, 300, [(9, 200), (1, 300)]),  # the min_rows floor merges rungs instead of refitting the same rows
        (6, 100, [(6, 100)]),  # a training part below min_rows: every configuration on all of it
    ],
)
def test_rung_plan_ends_with_one_configuration_on_the_top_rows(configs, top, plan):
    assert T.rung_plan(configs, top_rows=top, schedule=C.SearchParams(factor=3, min_rows=200)) == plan


def test_subsamples_are_nested_sorted_and_all_rows_means_the_original_order():
    small, large = T.subsample_rows(1000, 100, seed=4), T.subsample_rows(1000, 300, seed=4)
    assert set(small) <= set(large) and list(large) == sorted(large) and len(large) == 300
    assert list(T.subsample_rows(50, None, seed=4)) == list(range(50))
    assert list(T.subsample_rows(50, 80, seed=4)) == list(range(50))


def test_fixed_params_are_a_one_configuration_search_on_all_rows(data):
    split, features, preprocessor = data
    spec = C.CandidateSpec("lr", LOGISTIC, {"C": 1.0, "max_iter": 500})
    result = search(data, spec)
    assert [(t.rung, t.rows) for t in result.trials] == [(0, len(split.train))]
    direct = T.train_candidate(split.train, preprocessor=preprocessor, spec=spec, features=features, seed=5)
    x = split.validation[list(features.features)]
    assert np.array_equal(result.model.predict_proba(x), direct.predict_proba(x))


def test_search_halves_records_every_trial_and_its_winner_refits_exactly(data):
    split, features, preprocessor = data
    spec = C.CandidateSpec(
        "rf",
        FOREST,
        {"n_estimators": 10, "n_jobs": 1},
        search={"max_depth": (2, 4, 8), "min_samples_leaf": (1, 20, 50)},
        max_rows=900,
    )
    result = search(data, spec)
    assert [sum(t.rung == r for t in result.trials) for r in range(3)] == [9, 3, 1]
    assert [t.rows for t in result.trials if t.rung == 2] == [900] and result.rows == 900
    assert len({tuple(sorted(t.config.items())) for t in result.trials if t.rung == 0}) == 9
    best_first = max((t for t in result.trials if t.rung == 0), key=lambda t: t.score)
    assert best_first.config in [t.config for t in result.trials if t.rung == 1]  # the best go on
    assert all(t.iterations == 10 for t in result.trials)  # trees are a forest's iterations

    again = search(data, spec)
    x = split.validation[list(features.features)]
    assert again.config == result.config and np.array_equal(again.model.predict_proba(x), result.model.predict_proba(x))
    refit = T.train_candidate(
        split.train,
        preprocessor=preprocessor,
        spec=spec.with_params(result.config),
        features=features,
        seed=5,
        rows=result.rows,
    )
    assert np.array_equal(refit.predict_proba(x), result.model.predict_proba(x))  # what `make reproduce` does


def test_early_stopping_is_a_budget_of_iterations(data):
    spec = C.CandidateSpec(
        "hgb",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 500, "early_stopping": True, "n_iter_no_change": 3, "learning_rate": 0.3},
    )
    [trial] = search(data, spec).trials
    assert trial.iterations is not None and trial.iterations < 500


def test_a_spent_budget_stops_the_search_at_the_best_of_the_last_finished_rung(data):
    spec = C.CandidateSpec("rf", FOREST, {"n_estimators": 10, "n_jobs": 1}, search={"max_depth": (2, 4, 8)})
    result = search(data, spec, budget_seconds=0.0)
    assert result.budget_exhausted and {t.rung for t in result.trials} == {0}
    assert result.config == max(result.trials, key=lambda t: t.score).config and result.rows == 600


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        ({"estimator": LOGISTIC, "search": {"C": 1.0}}, "non-empty list"),
        ({"estimator": LOGISTIC, "search": {"C": []}}, "non-empty list"),
        ({"estimator": LOGISTIC, "max_rows": 0}, "max_rows"),
        ({"estimator": LOGISTIC, "grid": {}}, "unknown key"),
        ({"params": {}}, "estimator"),
    ],
)
def test_bad_search_spaces_fail_with_the_key(candidate, message):
    import yaml

    from ml_assets_tests.lib.test_config_snapshot_training import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["training"]["candidates"] = {"lr": candidate}
    with pytest.raises(C.ParamsError, match=message):
        C.parse_params(raw)


def test_search_values_override_params_in_grid_order():
    spec = C.CandidateSpec("x", LOGISTIC, {"C": 1.0, "max_iter": 5}, search={"max_iter": (10, 20), "C": (0.1,)})
    assert spec.configurations() == [{"C": 0.1, "max_iter": 10}, {"C": 0.1, "max_iter": 20}]
    assert C.CandidateSpec("x", LOGISTIC, {"C": 1.0}).configurations() == [{"C": 1.0}]


def test_parallel_rungs_give_the_same_trials_and_model(data, monkeypatch: pytest.MonkeyPatch):
    split, features, _ = data
    spec = C.CandidateSpec("rf", FOREST, {"n_estimators": 10, "n_jobs": 1}, search={"max_depth": (2, 4, 8)})
    serial = search(data, spec, n_jobs=1)
    monkeypatch.setattr(T, "PARALLEL_MIN_ROWS", 0)
    parallel = search(data, spec, n_jobs=2)
    assert [(t.config, t.rows, t.score) for t in parallel.trials] == [
        (t.config, t.rows, t.score) for t in serial.trials
    ]
    x = split.validation[list(features.features)]
    assert np.array_equal(parallel.model.predict_proba(x), serial.model.predict_proba(x))
