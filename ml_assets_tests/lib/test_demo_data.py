from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.lib import demo_data as dd

DAY = datetime.date(2026, 11, 1)
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "age", "support_calls"]
CATEGORICAL = ["contract", "payment_method", "internet_service", "region"]


def _batches(n: int, *, rows: int = 1200, **kwargs: float) -> pd.DataFrame:
    frames = [
        dd.generate_batch(n_rows=rows, seed=100 + i, batch_date=DAY + datetime.timedelta(days=i), **kwargs)
        for i in range(n)
    ]
    return pd.concat(frames, ignore_index=True)


def test_same_arguments_give_identical_batches() -> None:
    a = dd.generate_batch(n_rows=300, seed=5, batch_date=DAY, covariate_drift=0.5, label_shift=0.3)
    b = dd.generate_batch(n_rows=300, seed=5, batch_date=DAY, covariate_drift=0.5, label_shift=0.3)
    pd.testing.assert_frame_equal(a, b)


def test_seed_and_date_change_the_data_and_the_ids() -> None:
    base = dd.generate_batch(n_rows=300, seed=5, batch_date=DAY)
    other_seed = dd.generate_batch(n_rows=300, seed=6, batch_date=DAY)
    other_day = dd.generate_batch(n_rows=300, seed=5, batch_date=DAY + datetime.timedelta(days=1))
    for other in (other_seed, other_day):
        assert not base["monthly_charges"].equals(other["monthly_charges"])
        assert set(base[dd.ID_COLUMN]).isdisjoint(other[dd.ID_COLUMN])
    assert base[dd.ID_COLUMN].is_unique


def test_schema_ranges_and_domains() -> None:
    df = _batches(3)
    assert list(df.columns) == list(dd.COLUMNS)
    for column in ("tenure_months", "age", "support_calls", dd.TARGET):
        assert pd.api.types.is_integer_dtype(df[column]), column
    assert df["tenure_months"].between(0, 72).all()
    assert df["monthly_charges"].between(18, 120).all()
    assert df["age"].between(18, 90).all()
    assert df["support_calls"].between(0, 15).all()
    assert df["total_charges"].dropna().ge(df["monthly_charges"].min()).all()
    assert set(df["contract"]) == set(dd.CONTRACTS)
    assert set(df["payment_method"]) == set(dd.PAYMENT_METHODS)
    assert set(df["internet_service"].dropna()) == set(dd.INTERNET_SERVICES)
    assert set(df["region"]) == set(dd.REGIONS)
    assert set(df[dd.TARGET]) == {0, 1}
    assert df[dd.ID_COLUMN].map(type).eq(str).all()
    # Missing values only where documented, at roughly the documented rates.
    assert 0.015 < df["total_charges"].isna().mean() < 0.05
    assert 0.02 < df["internet_service"].isna().mean() < 0.06
    assert df.drop(columns=["total_charges", "internet_service"]).notna().all().all()


def test_label_is_imbalanced_and_label_shift_raises_the_prior() -> None:
    base = _batches(4)[dd.TARGET].mean()
    shifted = _batches(4, label_shift=1.0)[dd.TARGET].mean()
    assert 0.15 < base < 0.26
    assert shifted > base + 0.1


def test_label_follows_the_documented_risk_factors() -> None:
    df = _batches(4)
    rate = df.groupby("contract")[dd.TARGET].mean()
    assert rate["month_to_month"] > rate["one_year"] > rate["two_year"]
    assert df.loc[df["tenure_months"] < 12, dd.TARGET].mean() > df.loc[df["tenure_months"] > 36, dd.TARGET].mean()
    assert df.loc[df["support_calls"] >= 4, dd.TARGET].mean() > df.loc[df["support_calls"] <= 1, dd.TARGET].mean()
    by_payment = df.groupby("payment_method")[dd.TARGET].mean()
    assert by_payment.idxmax() == "electronic_check"


def test_a_good_classifier_reaches_a_realistic_auc() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = _batches(3)
    test = dd.generate_batch(n_rows=2000, seed=999, batch_date=DAY)
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                CATEGORICAL,
            ),
        ]
    )
    model = make_pipeline(features, LogisticRegression(max_iter=1000)).fit(train, train[dd.TARGET])
    auc = roc_auc_score(test[dd.TARGET], model.predict_proba(test)[:, 1])
    dummy = DummyClassifier(strategy="prior").fit(train, train[dd.TARGET])
    dummy_auc = roc_auc_score(test[dd.TARGET], dummy.predict_proba(test)[:, 1])
    assert 0.78 <= auc <= 0.92
    assert dummy_auc == pytest.approx(0.5)


def test_covariate_drift_shifts_distributions_but_stays_plausible() -> None:
    base, drifted = _batches(2), _batches(2, covariate_drift=1.0)
    assert drifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 8
    assert drifted["tenure_months"].mean() < base["tenure_months"].mean() - 5
    assert drifted["support_calls"].mean() > base["support_calls"].mean() + 0.5
    share = (drifted["contract"] == "month_to_month").mean() - (base["contract"] == "month_to_month").mean()
    assert share > 0.1
    assert drifted["monthly_charges"].between(18, 120).all()
    assert drifted["tenure_months"].between(0, 72).all()
    assert drifted["support_calls"].between(0, 15).all()
    assert set(drifted["contract"]) == set(dd.CONTRACTS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows=0"),
        ({"covariate_drift": -0.1}, "covariate_drift"),
        ({"label_shift": 3.0}, "label_shift"),
    ],
)
def test_generate_batch_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    args = {"n_rows": 10, "seed": 1, "batch_date": DAY} | kwargs
    with pytest.raises(ValueError, match=message):
        dd.generate_batch(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return dd.generate_batch(n_rows=500, seed=3, batch_date=DAY)


def test_corrupt_null_required(good: pd.DataFrame) -> None:
    bad = dd.corrupt_batch(good, kind="null_required", seed=1)
    assert 0.3 < bad["monthly_charges"].isna().mean() < 0.5
    assert 0.0 < bad[dd.TARGET].isna().mean() < 0.15
    assert set(bad[dd.TARGET].dropna()) <= {0, 1}


def test_corrupt_wrong_dtype(good: pd.DataFrame) -> None:
    bad = dd.corrupt_batch(good, kind="wrong_dtype", seed=1)
    assert bad["monthly_charges"].dtype == object
    assert bad["monthly_charges"].str.endswith(" USD").all()
    assert bad["monthly_charges"].iloc[0] == f"{good['monthly_charges'].iloc[0]:.1f} USD"


def test_corrupt_unknown_category(good: pd.DataFrame) -> None:
    bad = dd.corrupt_batch(good, kind="unknown_category", seed=1)
    unknown = set(bad["contract"]) - set(dd.CONTRACTS)
    assert unknown == {"lifetime"}
    assert 0.05 < (bad["contract"] == "lifetime").mean() < 0.25


def test_corrupt_one_class_target(good: pd.DataFrame) -> None:
    bad = dd.corrupt_batch(good, kind="one_class_target", seed=1)
    assert set(bad[dd.TARGET]) == {0}
    assert list(bad.columns) == list(dd.COLUMNS)


@pytest.mark.parametrize("kind", dd.BAD_BATCH_KINDS)
def test_corrupt_batch_copies_and_is_deterministic(good: pd.DataFrame, kind: str) -> None:
    before = good.copy()
    first = dd.corrupt_batch(good, kind=kind, seed=4)
    pd.testing.assert_frame_equal(good, before)
    pd.testing.assert_frame_equal(first, dd.corrupt_batch(good, kind=kind, seed=4))
    assert not first.equals(good)


def test_corrupt_batch_unknown_kind_lists_the_valid_ones(good: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown bad batch kind 'nope'") as info:
        dd.corrupt_batch(good, kind="nope", seed=1)
    for kind in dd.BAD_BATCH_KINDS:
        assert kind in str(info.value)


def test_corrupt_batch_names_a_missing_column(good: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="`contract`"):
        dd.corrupt_batch(good.drop(columns=["contract"]), kind="unknown_category", seed=1)


def test_write_demo_batches_writes_dated_files(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "nested"
    paths = dd.write_demo_batches(landing, batches=3, rows_per_batch=40, seed=7, start_date=DAY)
    assert [p.name for p in paths] == ["batch_2026-11-01.csv", "batch_2026-11-02.csv", "batch_2026-11-03.csv"]
    assert sorted(landing.iterdir()) == paths  # no temporary files left behind
    frames = [pd.read_csv(p) for p in paths]
    assert all(len(f) == 40 for f in frames)
    assert not frames[0]["monthly_charges"].equals(frames[1]["monthly_charges"])
    assert pd.concat(frames)[dd.ID_COLUMN].is_unique


def test_write_demo_batches_is_reproducible(tmp_path: Path) -> None:
    a = dd.write_demo_batches(tmp_path / "a", batches=2, rows_per_batch=30, seed=7, start_date=DAY)
    b = dd.write_demo_batches(tmp_path / "b", batches=2, rows_per_batch=30, seed=7, start_date=DAY)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_write_demo_batches_never_overwrites(tmp_path: Path) -> None:
    first = dd.write_demo_batches(tmp_path, batches=2, rows_per_batch=30, seed=7, start_date=DAY)
    contents = {p: p.read_bytes() for p in first}
    # A parquet batch for a later date: dates taken in any format are skipped.
    (tmp_path / "batch_2026-11-04.parquet").write_bytes(b"placeholder")
    second = dd.write_demo_batches(tmp_path, batches=2, rows_per_batch=30, seed=7, start_date=DAY)
    assert [p.name for p in second] == ["batch_2026-11-03.csv", "batch_2026-11-05.csv"]
    assert {p: p.read_bytes() for p in first} == contents
    assert (tmp_path / "batch_2026-11-04.parquet").read_bytes() == b"placeholder"
    # Same seed and index, new date: new data, new ids.
    old, new = pd.read_csv(first[0]), pd.read_csv(second[0])
    assert set(old[dd.ID_COLUMN]).isdisjoint(new[dd.ID_COLUMN])


def test_write_demo_batches_parquet_drift_and_bad(tmp_path: Path) -> None:
    (path,) = dd.write_demo_batches(
        tmp_path, batches=1, rows_per_batch=50, seed=7, start_date=DAY, covariate_drift=1.0, fmt="parquet"
    )
    assert path.name == "batch_2026-11-01.parquet"
    expected = dd.generate_batch(
        n_rows=50, seed=dd._derive_seed(7, 0), batch_date=DAY, covariate_drift=1.0
    )  # the documented (seed, index) derivation
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    (bad,) = dd.write_demo_batches(
        tmp_path, batches=1, rows_per_batch=50, seed=7, start_date=DAY, bad="one_class_target"
    )
    assert bad.name == "batch_2026-11-02.csv"
    assert set(pd.read_csv(bad)[dd.TARGET]) == {0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batches": 0}, "batches=0"),
        ({"fmt": "xlsx"}, "xlsx"),
        ({"bad": "nope"}, "nope"),
        ({"rows_per_batch": 0}, "rows"),
    ],
)
def test_write_demo_batches_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"batches": 1, "rows_per_batch": 10, "seed": 1, "start_date": DAY} | kwargs
    with pytest.raises(ValueError, match=message):
        dd.write_demo_batches(tmp_path / "x", **args)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_cli_writes_and_prints_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--landing", str(tmp_path), "--batches", "2", "--rows", "25", "--seed", "11"]
    code = dd.main([*argv, "--drift", "1.0", "--label-shift", "0.5", "--start-date", "2026-12-01"])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "batch_2026-12-01.csv"), str(tmp_path / "batch_2026-12-02.csv")]
    assert dd.main([*argv, "--batches", "1", "--bad", "wrong_dtype", "--format", "parquet"]) == 0
    (written,) = capsys.readouterr().out.split()
    assert written.endswith(".parquet")
    assert pd.read_parquet(written)["monthly_charges"].str.endswith("USD").all()
    with pytest.raises(SystemExit):
        dd.main([*argv, "--bad", "nope"])


def test_module_import_is_light() -> None:
    code = (
        "import sys, ml_assets.lib.demo_data; "
        "print(sorted(m for m in ('dagster', 'great_expectations', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_seed_derivation_is_stable() -> None:
    # Changing the derivation silently changes every demo batch (and the committed suite).
    assert dd._derive_seed(7, 0) == dd._derive_seed(7, 0)
    assert len({dd._derive_seed(7, i) for i in range(50)}) == 50
    assert all(0 <= dd._derive_seed(seed, 1) < 2**63 for seed in (-3, 0, 2**40))
