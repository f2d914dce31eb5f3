from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml_assets.lib import demo_data as dd
from ml_assets.lib import validation as v

REPO = Path(__file__).resolve().parents[2]
COMMITTED_SUITE = REPO / "gx" / "landed_batch.json"
DAY = datetime.date(2026, 12, 1)
# params.yaml `validation` values, also used for the committed suite.
ROWS_AT_LEAST_ONE = {
    "type": "expect_table_row_count_to_be_between",
    "kwargs": {"min_value": 1},
    "meta": {"check": "row_count"},
}
LIMITS: dict[str, Any] = {
    "min_rows": 50,
    "max_null_fraction": 0.10,
    "max_duplicate_fraction": 0.05,
    "min_classes": 2,
}


def _infer(df: pd.DataFrame, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "name": "test_suite",
        "target": dd.TARGET,
        "id_columns": [dd.ID_COLUMN],
        "feature_types": {},
        **LIMITS,
    } | overrides
    return v.infer_suite(df, **kwargs)


def _failing(report: v.ValidationReport) -> set[str]:
    return {check for check, outcomes in report.by_check().items() if not all(o.success for o in outcomes)}


@pytest.fixture(scope="module")
def suite() -> dict[str, Any]:
    return v.load_suite(COMMITTED_SUITE)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., pd.DataFrame]:
    """Write a demo batch like the pipeline would see it (CSV or Parquet) and read it back."""
    folder = tmp_path_factory.mktemp("landing")

    def land(*, fmt: str = "csv", rows: int = 600, **kwargs: Any) -> pd.DataFrame:
        (path,) = dd.write_demo_batches(
            folder, batches=1, rows_per_batch=rows, seed=21, start_date=DAY, fmt=fmt, **kwargs
        )
        return pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)

    return land


@pytest.fixture(scope="module")
def good_report(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> v.ValidationReport:
    return v.validate_batch(landed(), suite, batch_name="good.csv")


def test_committed_suite_is_reproducible_from_the_documented_command(tmp_path: Path) -> None:
    """gx/landed_batch.json == infer_suite on the 4 demo batches of params.yaml (seed 7, 1200 rows)."""
    landing, out = tmp_path / "landing", tmp_path / "landed_batch.json"
    dd.write_demo_batches(landing, batches=4, rows_per_batch=1200, seed=7, start_date=datetime.date(2026, 11, 1))
    columns = ["--target", "churned", "--id-columns", "customer_id"]
    limits = ["--min-rows", "50", "--max-null-fraction", "0.10", "--max-duplicate-fraction", "0.05"]
    code = v.main(["infer", "--landing", str(landing), "--out", str(out), *columns, *limits, "--min-classes", "2"])
    assert code == 0
    fresh = json.loads(out.read_text())
    committed = json.loads(COMMITTED_SUITE.read_text())
    for s in (fresh, committed):
        s["meta"].pop("great_expectations_version")  # a GX upgrade alone should not fail this
    assert fresh == committed, "regenerate gx/landed_batch.json with the command in validation.py's docstring"
    assert out.read_text() == COMMITTED_SUITE.read_text()


def test_suite_round_trips_through_gx(suite: dict[str, Any]) -> None:
    from great_expectations.core.expectation_suite import ExpectationSuite

    gx_suite = ExpectationSuite(**suite)
    # GX logs and drops invalid expectations instead of raising: compare counts too.
    assert len(gx_suite.expectations) == len(suite["expectations"])
    assert gx_suite.to_json_dict() == suite


def test_suite_tags_every_expectation_with_a_check_and_covers_all(suite: dict[str, Any]) -> None:
    checks = [e["meta"]["check"] for e in suite["expectations"]]
    assert set(checks) == set(v.CHECK_CATEGORIES)
    by_type = {(e["type"], e["kwargs"].get("column"), e["meta"]["check"]) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_in_set", "churned", "categorical_domains") in by_type
    assert ("expect_column_unique_value_count_to_be_between", "churned", "target") in by_type
    assert ("expect_table_row_count_to_be_between", None, "row_count") in by_type


def test_good_batch_passes_every_check(good_report: v.ValidationReport) -> None:
    assert good_report.success, [o for o in good_report.outcomes if not o.success]
    assert _failing(good_report) == set()
    grouped = good_report.by_check()
    assert list(grouped) == list(v.CHECK_CATEGORIES)
    assert all(grouped[c] for c in v.CHECK_CATEGORIES)
    assert sum(len(x) for x in grouped.values()) == len(good_report.outcomes)


def test_good_parquet_batch_passes(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    assert v.validate_batch(landed(fmt="parquet"), suite, batch_name="good.parquet").success


def test_extension_dtypes_are_understood(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    df = df.astype({"contract": "category", "region": "string", "payment_method": "string[pyarrow]"})
    df["tenure_months"] = df["tenure_months"].astype("Int64")
    report = v.validate_batch(df, suite, batch_name="extension_dtypes")
    assert report.success, [o for o in report.outcomes if not o.success]


@pytest.mark.parametrize(("drift", "label_shift"), [(1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
def test_drift_is_not_invalid_data(
    suite: dict[str, Any], landed: Callable[..., pd.DataFrame], drift: float, label_shift: float
) -> None:
    df = landed(rows=1200, covariate_drift=drift, label_shift=label_shift)
    report = v.validate_batch(df, suite, batch_name="drifted.csv")
    assert report.success, [o for o in report.outcomes if not o.success]


@pytest.mark.parametrize(
    ("kind", "must_fail", "may_fail"),
    [
        ("null_required", {"null_limits"}, {"target"}),
        ("wrong_dtype", {"columns_and_dtypes"}, {"numeric_ranges"}),
        ("unknown_category", {"categorical_domains"}, set()),
        ("missing_target", {"target", "columns_and_dtypes"}, {"null_limits", "categorical_domains", "duplicates"}),
    ],
)
def test_bad_batches_fail_the_right_checks(
    suite: dict[str, Any], landed: Callable[..., pd.DataFrame], kind: str, must_fail: set[str], may_fail: set[str]
) -> None:
    report = v.validate_batch(landed(bad=kind), suite, batch_name=f"{kind}.csv")
    assert not report.success
    failing = _failing(report)
    assert must_fail <= failing
    assert failing <= must_fail | may_fail


def test_missing_column_gives_failing_outcomes_not_an_exception(
    suite: dict[str, Any], landed: Callable[..., pd.DataFrame]
) -> None:
    df = landed().drop(columns=["region"])
    report = v.validate_batch(df, suite, batch_name="no_region.csv")
    about_region = [o for o in report.outcomes if o.column == "region"]
    assert about_region and not any(o.success for o in about_region)
    assert {o.observed for o in about_region} <= {"column missing", "column missing: region"}
    (dupes,) = report.by_check()["duplicates"]
    assert dupes.observed == "column missing: region"
    json.dumps(report.to_dict())


def test_duplicates_fail_only_the_duplicates_check(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    copies = df.sample(frac=0.08, random_state=0).assign(customer_id=lambda d: d["customer_id"] + "-dup")
    report = v.validate_batch(pd.concat([df, copies], ignore_index=True), suite, batch_name="dupes.csv")
    assert _failing(report) == {"duplicates"}
    (outcome,) = report.by_check()["duplicates"]
    assert outcome.column is None
    assert outcome.observed["unexpected_percent"] > 10  # every copy of a duplicated row counts
    assert len(outcome.observed["partial_unexpected_list"]) <= 2


def test_too_few_rows_fail_only_row_count(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    report = v.validate_batch(landed(rows=30), suite, batch_name="tiny.csv")
    assert _failing(report) == {"row_count"}
    (outcome,) = report.by_check()["row_count"]
    assert outcome.observed == 30
    assert outcome.expected == "min_value=50"


def test_single_class_batch_fails_target(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    report = v.validate_batch(df[df[dd.TARGET] == 0], suite, batch_name="no_churners.csv")
    assert _failing(report) == {"target"}


def test_out_of_range_value_fails_numeric_ranges(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    df.loc[:4, "age"] = 400
    report = v.validate_batch(df, suite, batch_name="old.csv")
    assert _failing(report) == {"numeric_ranges"}
    (outcome,) = [o for o in report.failures() if o.column == "age"]
    assert outcome.observed["partial_unexpected_list"] == [400] * 5


def test_outcome_fields(good_report: v.ValidationReport) -> None:
    nulls = {o.column: o for o in good_report.by_check()["null_limits"]}
    assert nulls["monthly_charges"].expectation == "expect_column_values_to_not_be_null"
    assert nulls["monthly_charges"].expected == "mostly=0.9"
    assert nulls[dd.TARGET].expected == "mostly=1.0"
    assert nulls["total_charges"].observed["unexpected_percent"] > 0
    types = {o.column: o for o in good_report.by_check()["columns_and_dtypes"] if "type_list" in o.expected}
    assert types["tenure_months"].observed == "int64"
    assert types["contract"].observed["unexpected_count"] == 0
    json.dumps(good_report.to_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        good_report.success = False  # type: ignore[misc]


def test_by_check_lists_every_category_even_when_the_suite_lacks_some(landed: Callable[..., pd.DataFrame]) -> None:
    small = {
        "name": "rows_only",
        "expectations": [ROWS_AT_LEAST_ONE],
    }
    report = v.validate_batch(landed(rows=60), small, batch_name="b")
    grouped = report.by_check()
    assert list(grouped) == list(v.CHECK_CATEGORIES)
    assert len(grouped["row_count"]) == 1
    assert all(grouped[c] == () for c in v.CHECK_CATEGORIES if c != "row_count")


def test_to_html_is_a_self_contained_report(suite: dict[str, Any], landed: Callable[..., pd.DataFrame]) -> None:
    report = v.validate_batch(landed(bad="unknown_category"), suite, batch_name="<bad> & batch.csv")
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;bad&gt; &amp; batch.csv: FAILED" in page
    assert "<script" not in page and "http" not in page
    assert page.count("<tr") == 2 + len(v.CHECK_CATEGORIES) + len(report.outcomes)
    assert "lifetime" in page and "FAIL" in page


def test_validate_batch_writes_no_files(
    suite: dict[str, Any], landed: Callable[..., pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = landed()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert v.validate_batch(df, suite, batch_name="b").success
    assert list(tmp_path.iterdir()) == []


def test_invalid_expectation_is_an_error_naming_it(landed: Callable[..., pd.DataFrame]) -> None:
    broken = {
        "name": "broken",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1},
                "meta": {"check": "row_count"},
            },
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "age", "mostly": 3},
                "meta": {"check": "null_limits"},
            },
        ],
    }
    with pytest.raises(ValueError, match=r"batch `b.csv`: expectation #1 `expect_column_values_to_not_be_null`"):
        v.validate_batch(landed(rows=60), broken, batch_name="b.csv")


def test_unknown_check_category_is_rejected(tmp_path: Path) -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {}, "meta": {"check": "rows"}}],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"suite `.*s.json`: expectation #0 .* meta.check='rows'"):
        v.load_suite(path)
    with pytest.raises(ValueError, match=r"meta\.check"):
        v.save_suite(suite, tmp_path / "t.json")


def test_load_suite_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.json` not found: infer one with"):
        v.load_suite(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json`: not valid JSON"):
        v.load_suite(tmp_path / "bad.json")


def test_save_suite_is_sorted_and_stable(suite: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "deep" / "suite.json"
    v.save_suite(suite, path)
    first = path.read_text()
    v.save_suite(v.load_suite(path), path)
    assert path.read_text() == first
    assert first.endswith("}\n")
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["suite.json"]


def test_infer_suite_ranges_nulls_domains_and_duplicates() -> None:
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(6)],
            "pos": [10.0, 12.5, 20.0, 11.0, None, 15.0],
            "neg": [-4, 6, 0, 1, 2, 3],
            "small": [2, 3, 3, 2, 3, 2],
            "zip": [101, 102, 101, 103, 102, 101],
            "flag": [True, False, True, True, False, True],
            "color": ["red", "blue", None, "red", "red", "blue"],
            "y": ["a", "b", "a", "b", "a", "a"],
        }
    )
    suite = _infer(df, target="y", id_columns=["id"], feature_types={"zip": "categorical"}, max_null_fraction=0.2)
    exp = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}

    def kwargs(kind: str, column: str | None) -> dict[str, Any]:
        return {k: val for k, val in exp[(f"expect_{kind}", column)]["kwargs"].items() if k != "column"}

    assert kwargs("column_values_to_be_between", "pos") == {"min_value": 5.0, "max_value": 25.0}
    assert kwargs("column_values_to_be_between", "neg") == {"min_value": -9.0, "max_value": 11.0}
    assert kwargs("column_values_to_be_between", "small") == {"min_value": 1.0, "max_value": 4.0}
    assert ("expect_column_values_to_be_between", "zip") not in exp
    assert kwargs("column_values_to_be_in_set", "zip") == {"value_set": [101, 102, 103]}
    assert kwargs("column_values_to_be_in_set", "flag") == {"value_set": [False, True]}
    assert kwargs("column_values_to_be_in_set", "color") == {"value_set": ["blue", "red"]}
    assert kwargs("column_values_to_be_in_set", "y") == {"value_set": ["a", "b"]}
    assert ("expect_column_values_to_be_in_set", "id") not in exp
    assert kwargs("column_values_to_not_be_null", "color") == {"mostly": 0.8}
    # GX serializes mostly=1.0 (its default) by leaving it out.
    assert kwargs("column_values_to_not_be_null", "y") == {}
    assert kwargs("column_values_to_not_be_null", "id") == {}
    assert kwargs("column_values_to_be_in_type_list", "pos")["type_list"] == list(v.NUMERIC_TYPE_LIST)
    assert kwargs("column_values_to_be_in_type_list", "color")["type_list"] == list(v.STRING_TYPE_LIST)
    assert kwargs("column_values_to_be_in_type_list", "flag")["type_list"] == list(v.BOOLEAN_TYPE_LIST)
    dupes = kwargs("compound_columns_to_be_unique", None)
    assert dupes == {"column_list": ["pos", "neg", "small", "zip", "flag", "color", "y"], "mostly": 0.95}
    assert kwargs("column_unique_value_count_to_be_between", "y") == {"min_value": 2}
    assert suite["meta"]["ml_assets"]["column_kinds"]["zip"] == "categorical"
    # The sample passes its own suite.
    own = _infer(
        df, target="y", id_columns=["id"], feature_types={"zip": "categorical"}, max_null_fraction=0.2, min_rows=1
    )
    report = v.validate_batch(df, own, batch_name="sample")
    assert report.success, [o for o in report.outcomes if not o.success]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, r"target `nope` is not a column"),
        ({"id_columns": ["nope"]}, r"id column `nope` is not a column"),
        ({"id_columns": "customer_id"}, r"pass a list"),
        ({"feature_types": {"contract": "numeric"}}, r"column `contract`: feature_types says numeric"),
        ({"feature_types": {"age": "ordinal"}}, r"column `age` has kind 'ordinal'"),
        ({"feature_types": {"nope": "numeric"}}, r"column `nope` is not in the sample"),
        ({"max_null_fraction": 1.0}, r"max_null_fraction=1.0"),
        ({"min_classes": 3}, r"target `churned` has 2 distinct value\(s\), fewer than min_classes=3"),
    ],
)
def test_infer_suite_errors_name_the_problem(change: dict[str, Any], message: str) -> None:
    df = dd.generate_batch(n_rows=80, seed=1, batch_date=DAY)
    with pytest.raises(ValueError, match=message):
        _infer(df, **change)


def test_cli_validate_reports_and_exits_nonzero_on_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = (
        dd.write_demo_batches(tmp_path, batches=1, rows_per_batch=100, seed=3, start_date=DAY, bad=kind)[0]
        for kind in (None, "wrong_dtype")
    )
    reports = tmp_path / "reports"
    argv = ["validate", "--suite", str(COMMITTED_SUITE), "--html", str(reports)]
    assert v.main([*argv, str(good)]) == 0
    assert v.main([*argv, str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad.name}: FAILED" in out and "columns_and_dtypes: 1 failed" in out
    assert sorted(p.name for p in reports.iterdir()) == sorted([f"{good.name}.html", f"{bad.name}.html"])
    assert f"{bad.name}: FAILED" in (reports / f"{bad.name}.html").read_text()


def test_module_import_is_light() -> None:
    code = (
        "import sys, ml_assets.lib.validation; "
        "print(sorted(m for m in ('dagster', 'great_expectations', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
