"""Unit tests of `ml_assets.lib.drift`: PSI, tests, corrections, the decision rule and p-value text."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml_assets.lib.drift import (
    DriftReport,
    adjust_p_values,
    categorical_psi,
    chi_square_test,
    compute_drift,
    format_p_value,
    population_stability_index,
)

RULE = {"alpha": 0.05, "psi_threshold": 0.2, "min_samples": 200}
CATEGORIES = ["monthly", "annual", "two_year"]
MIX = [0.6, 0.3, 0.1]


def _frame(
    rng: np.random.Generator,
    n: int,
    *,
    tenure_shift: float = 0.0,
    plan_mix: list[float] | None = None,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.normal(24.0 + 10.0 * tenure_shift, 10.0, n),
            "charges": rng.lognormal(4.0, 0.5, n),
            "plan": rng.choice(CATEGORIES, n, p=plan_mix or MIX),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )


def _drift(reference: pd.DataFrame, current: pd.DataFrame, **overrides) -> DriftReport:
    options = {
        "numeric": ["tenure", "charges"],
        "categorical": ["plan", "region"],
        **RULE,
        **overrides,
    }
    return compute_drift(reference, current, **options)


# --- PSI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psi_is_zero_on_identical_samples(seed: int) -> None:
    values = np.random.default_rng(seed).normal(size=5_000)
    assert population_stability_index(values, values.copy()) == pytest.approx(0.0)
    assert categorical_psi(values.round(), values.round()) == pytest.approx(0.0)


def test_psi_is_small_on_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(3)
    assert population_stability_index(rng.normal(size=20_000), rng.normal(size=2_000)) < 0.02


@pytest.mark.parametrize("bins", [2, 10, 20])
def test_psi_is_large_on_disjoint_samples(bins: int) -> None:
    rng = np.random.default_rng(4)
    psi = population_stability_index(rng.normal(0, 1, 5_000), rng.normal(50, 1, 1_000), bins=bins)
    assert psi > 2.0
    assert categorical_psi(["a"] * 100, ["b"] * 100) > 2.0


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=20_000)
    psis = [population_stability_index(reference, rng.normal(shift, 1, 2_000)) for shift in (0.0, 0.25, 0.5, 1.0)]
    assert psis == sorted(psis)
    assert psis[-1] > 0.2 > psis[0]


@pytest.mark.parametrize("shift", [-1.0, 1.0])
def test_psi_sees_a_shift_of_a_constant_reference_in_either_direction(
    shift: float,
) -> None:
    reference = np.full(1_000, 3.0)
    assert population_stability_index(reference, reference.copy()) == pytest.approx(0.0)
    assert population_stability_index(reference, reference + shift) > 2.0


def test_psi_handles_ties_and_ignores_non_finite_values() -> None:
    rng = np.random.default_rng(6)
    zero_inflated = np.where(rng.random(10_000) < 0.6, 0.0, rng.exponential(5, 10_000))
    noisy = np.concatenate([zero_inflated[:2_000], [np.nan, np.inf, -np.inf]])
    psi = population_stability_index(zero_inflated, noisy)
    assert 0.0 <= psi < 0.02


def test_categorical_psi_counts_missing_as_a_category() -> None:
    reference = ["a"] * 90 + ["b"] * 10
    with_missing = ["a"] * 50 + ["b"] * 10 + [None] * 40
    assert categorical_psi(reference, reference) == pytest.approx(0.0)
    assert categorical_psi(reference, with_missing) > 0.2


def test_psi_rejects_an_all_nan_sample() -> None:
    with pytest.raises(ValueError, match="current sample has no finite values"):
        population_stability_index(np.arange(10.0), np.array([np.nan, np.nan]))


# --- multiple-testing corrections (scipy's false_discovery_control; Bonferroni) -------------

# Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the step-up procedure
# rejects the 4 smallest. Adjusted values computed by hand (min over j >= i of p_(j) * 15 / j),
# the same as R's p.adjust(p, "BH").
BH_PAPER_P = [
    0.0001,
    0.0004,
    0.0019,
    0.0095,
    0.0201,
    0.0278,
    0.0298,
    0.0344,
    0.0459,
    0.3240,
    0.4262,
    0.5719,
    0.6528,
    0.7590,
    1.0000,
]
BH_PAPER_ADJUSTED = [
    0.0015,
    0.003,
    0.0095,
    0.035625,
    0.0603,
    0.0298 * 15 / 7,  # steps up: 0.0278 * 15 / 6 = 0.0695 is larger
    0.0298 * 15 / 7,
    0.0645,
    0.0765,
    0.486,
    0.58118181818,
    0.71487500000,
    0.75323076923,
    0.813214285714,
    1.0,
]


def benjamini_hochberg(p_values):
    return adjust_p_values(p_values, correction="benjamini_hochberg")


def test_benjamini_hochberg_matches_the_worked_example_of_the_paper() -> None:
    adjusted = benjamini_hochberg(BH_PAPER_P)
    np.testing.assert_allclose(adjusted, BH_PAPER_ADJUSTED, rtol=1e-9)
    assert int((adjusted < 0.05).sum()) == 4


def test_benjamini_hochberg_keeps_the_input_order() -> None:
    order = np.random.default_rng(7).permutation(len(BH_PAPER_P))
    shuffled = np.asarray(BH_PAPER_P)[order]
    np.testing.assert_allclose(benjamini_hochberg(shuffled), np.asarray(BH_PAPER_ADJUSTED)[order], rtol=1e-9)


@pytest.mark.parametrize(
    ("p_values", "expected"),
    [
        ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05] * 5),
        ([0.5], [0.5]),
        ([], []),
        ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9]),
    ],
)
def test_benjamini_hochberg_small_cases(p_values: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(benjamini_hochberg(p_values), expected)


def test_bonferroni_multiplies_and_caps() -> None:
    np.testing.assert_allclose(adjust_p_values([0.01, 0.2, 0.04], correction="bonferroni"), [0.03, 0.6, 0.12])
    np.testing.assert_allclose(adjust_p_values([0.5, 0.6], correction="bonferroni"), [1.0, 1.0])


@pytest.mark.parametrize("p_values", [[0.1, 1.5], [np.nan], [-0.01]])
def test_benjamini_hochberg_rejects_invalid_p_values(p_values: list[float]) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg(p_values)


# --- chi-square --------------------------------------------------------------------------


def test_chi_square_merges_rare_categories_instead_of_failing() -> None:
    rng = np.random.default_rng(8)
    reference = [*rng.choice(["a", "b"], 2_000), "rare1", "rare2"]
    current = [*rng.choice(["a", "b"], 500), "rare3"]
    statistic, p_value = chi_square_test(reference, current)
    assert np.isfinite(statistic)
    assert p_value > 0.01


def test_chi_square_of_a_single_shared_category_says_no_difference() -> None:
    assert chi_square_test(["a"] * 300, ["a"] * 300) == (0.0, 1.0)


# --- compute_drift -----------------------------------------------------------------------


@pytest.mark.parametrize("correction", ["bonferroni", "benjamini_hochberg"])
def test_identical_samples_do_not_drift(correction: str) -> None:
    reference = _frame(np.random.default_rng(10), 3_000)
    report = _drift(reference, reference.copy(), correction=correction)
    assert report.status == "no_drift"
    assert not report.drifted
    assert report.drifted_features == ()
    assert all(f.psi == pytest.approx(0.0) for f in report.features)
    assert report.summary().startswith("no drift in 4 features")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_one_sd_mean_shift_drifts_that_feature_only(seed: int) -> None:
    rng = np.random.default_rng(seed)
    report = _drift(_frame(rng, 20_000), _frame(rng, 1_000, tenure_shift=1.0))
    assert report.status == "drift"
    assert report.drifted
    assert report.drifted_features == ("tenure",)
    assert "tenure" in report.summary() and "charges" not in report.summary()


@pytest.mark.parametrize("seed", [14, 15])
def test_a_changed_category_mix_drifts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    report = _drift(_frame(rng, 20_000), _frame(rng, 1_000, plan_mix=[0.2, 0.3, 0.5]))
    assert report.drifted_features == ("plan",)
    (plan,) = (f for f in report.features if f.feature == "plan")
    assert plan.kind == "categorical" and plan.test == "chi_square"


def test_a_new_category_in_the_current_batch_drifts() -> None:
    rng = np.random.default_rng(16)
    reference = _frame(rng, 5_000)
    current = _frame(rng, 1_000)
    current.loc[:399, "plan"] = "lifetime"
    assert _drift(reference, current).drifted_features == ("plan",)


def test_a_significant_but_trivial_shift_is_not_drift() -> None:
    """Huge samples make a 0.05 sd shift significant; the PSI threshold keeps it quiet."""
    rng = np.random.default_rng(17)
    report = _drift(_frame(rng, 200_000), _frame(rng, 100_000, tenure_shift=0.05))
    (tenure,) = (f for f in report.features if f.feature == "tenure")
    assert tenure.adjusted_p_value < RULE["alpha"]
    assert tenure.psi < RULE["psi_threshold"]
    assert not report.drifted


@pytest.mark.parametrize("n_current", [0, 10, 199])
def test_a_tiny_sample_is_insufficient_data(n_current: int) -> None:
    rng = np.random.default_rng(18)
    report = _drift(_frame(rng, 5_000), _frame(rng, n_current, tenure_shift=5.0))
    assert report.status == "insufficient_data"
    assert not report.drifted
    assert report.features == ()
    assert report.to_records() == []
    assert f"{n_current} current" in report.summary()
    assert "200" in report.summary()


def test_exactly_min_samples_is_enough() -> None:
    rng = np.random.default_rng(19)
    report = _drift(_frame(rng, 5_000), _frame(rng, 200, tenure_shift=2.0))
    assert report.status == "drift"


def test_stationary_features_raise_no_false_alarms_thanks_to_the_correction() -> None:
    """30 stationary features, 20 batches: raw p-values alarm in most, corrected in few.

    The PSI threshold is 0 here so that the correction alone is under test.
    """
    n_features, n_batches = 30, 20
    numeric = [f"x{i}" for i in range(n_features - 5)]
    categorical = [f"c{i}" for i in range(5)]
    raw_alarms = corrected_alarms = 0
    for seed in range(n_batches):
        rng = np.random.default_rng(100 + seed)

        def sample(n: int, rng: np.random.Generator = rng) -> pd.DataFrame:
            data = {c: rng.normal(size=n) for c in numeric}
            data |= {c: rng.choice(list("abcd"), n) for c in categorical}
            return pd.DataFrame(data)

        report = compute_drift(
            sample(2_000),
            sample(300),
            numeric=numeric,
            categorical=categorical,
            alpha=0.05,
            psi_threshold=0.0,
            min_samples=200,
        )
        raw_alarms += any(f.p_value < 0.05 for f in report.features)
        corrected_alarms += report.drifted
    # P(some raw p < 0.05 among 30 nulls) = 1 - 0.95**30 = 0.79; BH keeps it near 0.05.
    assert raw_alarms >= 10
    assert corrected_alarms <= 2


def test_missing_column_is_named() -> None:
    rng = np.random.default_rng(20)
    current = _frame(rng, 500).drop(columns=["region"])
    with pytest.raises(ValueError, match=r"the current data: column\(s\) \['region'\] missing"):
        _drift(_frame(rng, 500), current)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alpha": 0.0}, "alpha must be in"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"psi_threshold": -0.1}, "psi_threshold must be >= 0"),
        ({"min_samples": 0}, "min_samples must be"),
        ({"correction": "fdr"}, "unknown correction 'fdr'"),
        ({"bins": 1}, "bins must be"),
        ({"numeric": [], "categorical": []}, "no features"),
        ({"categorical": ["plan", "tenure"]}, r"\['tenure'\] listed more than once"),
        ({"numeric": ["tenure", "plan"], "categorical": []}, r"\['plan'\] not numeric"),
    ],
)
def test_bad_options_are_named(overrides: dict, message: str) -> None:
    frame = _frame(np.random.default_rng(21), 300)
    with pytest.raises(ValueError, match=message):
        _drift(frame, frame, **overrides)


def test_all_nan_numeric_column_is_named() -> None:
    rng = np.random.default_rng(22)
    current = _frame(rng, 300)
    current["charges"] = np.nan
    with pytest.raises(ValueError, match=r"'charges'.*no finite values"):
        _drift(_frame(rng, 300), current)


def test_nullable_and_categorical_dtypes_are_accepted() -> None:
    rng = np.random.default_rng(23)
    reference, current = _frame(rng, 2_000), _frame(rng, 400)
    for frame in (reference, current):
        frame["tenure"] = frame["tenure"].round().astype("Int64")
        frame.loc[frame.index[:5], "tenure"] = pd.NA
        frame["plan"] = frame["plan"].astype("category")
    current["plan"] = current["plan"].cat.add_categories(["unused"])
    assert _drift(reference, current).status == "no_drift"


def test_records_have_one_row_per_feature_in_order() -> None:
    rng = np.random.default_rng(24)
    report = _drift(_frame(rng, 2_000), _frame(rng, 400, tenure_shift=1.0))
    records = report.to_records()
    assert [r["feature"] for r in records] == ["tenure", "charges", "plan", "region"]
    assert set(records[0]) == {
        "feature",
        "kind",
        "test",
        "statistic",
        "p_value",
        "adjusted_p_value",
        "psi",
        "drifted",
    }
    assert records[0]["drifted"] is True
    assert pd.DataFrame(records).shape == (4, 8)
    assert all(r["adjusted_p_value"] >= r["p_value"] for r in records)


@pytest.mark.parametrize(
    ("p", "text"), [(0.43, "0.43"), (0.0012, "0.0012"), (0.00043, "0.00043"), (9.1e-33, "9.1e-33"), (0.0, "0")]
)
def test_p_values_print_as_their_value(p: float, text: str) -> None:
    assert format_p_value(p) == text
    assert float(text) == pytest.approx(p, rel=0.05)  # never a rounded 0 for a tiny p-value


def test_summary_prints_the_p_values_the_table_prints() -> None:
    rng = np.random.default_rng(25)
    report = _drift(_frame(rng, 5_000), _frame(rng, 1_000, tenure_shift=2.0))
    (tenure,) = (f for f in report.features if f.feature == "tenure")
    assert tenure.adjusted_p_value < 1e-30
    assert f"adj. p {format_p_value(tenure.adjusted_p_value)})" in report.summary()
    assert "e-" in format_p_value(tenure.adjusted_p_value)


def test_importing_the_module_does_not_import_scipy_or_dagster() -> None:
    code = (
        "import sys, ml_assets.lib.drift, ml_assets.lib.retrain; "
        "print(sorted(m for m in ('scipy', 'dagster') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
