"""`ml_assets.lib.validation` and `suite_inference`: the `gx/` project, its checkpoint, inference, the first batch."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml_assets.lib import demo_data as dd
from ml_assets.lib import suite_inference as si
from ml_assets.lib import validation as v
from ml_assets.lib.config import load_params

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
SUITE_PATH = PARAMS.validation.suite_path
SPEC = si.InferenceSpec.from_params(PARAMS)
DAY = datetime.date(2026, 12, 1)


def _copy_project(root: Path, *, suite: bool = True) -> Path:
    """A project root holding a copy of the repository's GX project (without machine state)."""
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    if not suite:
        for folder in ("expectations", "validation_definitions", "checkpoints"):
            for path in (root / "gx" / folder).glob("*.json"):
                path.unlink()
    return root


def _failing(report: v.ValidationReport) -> set[str]:
    return {c for c, verdict in report.verdicts.items() if verdict.status == "failed"}


def _statuses(report: v.ValidationReport) -> dict[str, str]:
    return {c: verdict.status for c, verdict in report.verdicts.items()}


def _tracked(root: Path) -> dict[str, str]:
    """md5 of every file of the GX project that git tracks (all but `uncommitted/`)."""
    files = (p for p in (root / "gx").rglob("*") if p.is_file() and "uncommitted" not in p.parts)
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root with the committed suite, shared by the tests that only validate."""
    return _copy_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., pd.DataFrame]:
    """Write a demo batch like the pipeline would see it (CSV or Parquet) and read it back."""
    folder = tmp_path_factory.mktemp("landing")

    def land(*, fmt: str = "csv", rows: int = 600, seed: int = 21, **kwargs: Any) -> pd.DataFrame:
        (path,) = dd.write_demo_batches(
            folder, batches=1, rows_per_batch=rows, seed=seed, start_date=DAY, fmt=fmt, **kwargs
        )
        return pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)

    return land


def validate(root: Path, df: pd.DataFrame, name: str = "batch.csv", **kwargs: Any) -> v.ValidationReport:
    return v.validate_batch(df, root=root, suite_path=SUITE_PATH, batch_name=name, spec=SPEC, **kwargs)


@pytest.fixture(scope="module")
def good_report(root: Path, landed: Callable[..., pd.DataFrame]) -> v.ValidationReport:
    return validate(root, landed(), "good.csv")


# --- the GX project ----------------------------------------------------------------------------


def test_committed_suite_is_reproducible_from_the_documented_command(tmp_path: Path) -> None:
    """gx/expectations/ == `infer` on the 4 demo batches of params.yaml (seed 7, 1,200 rows)."""
    landing = tmp_path / "landing"
    dd.write_demo_batches(landing, batches=4, rows_per_batch=1200, seed=7, start_date=datetime.date(2026, 11, 1))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert v.main(["infer", "--landing", str(landing), "--root", str(tmp_path)]) == 0
    for name in ("landed_batch", "landed_batch_unlabelled"):
        fresh, committed = (
            json.loads((r / "gx" / "expectations" / f"{name}.json").read_text()) for r in (tmp_path, REPO)
        )
        for suite in (fresh, committed):
            suite.pop("id")
            suite["meta"].pop("great_expectations_version")  # a GX upgrade alone should not fail this
            for e in suite["expectations"]:
                e.pop("id")
        assert fresh == committed, f"regenerate gx/ with the command in validation.py's docstring ({name})"


def test_gx_users_open_edit_and_rerun_the_project_with_gx_api(
    tmp_path: Path, landed: Callable[..., pd.DataFrame]
) -> None:
    import great_expectations as gx

    root = _copy_project(tmp_path)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    assert {s.name for s in context.suites.all()} == {"landed_batch", "landed_batch_unlabelled"}
    suite = context.suites.get("landed_batch")
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeBetween(column="age", max_value=30, meta={"check": "numeric_ranges"})
    )
    suite.save()
    result = context.checkpoints.get("landed_batch").run(batch_parameters={"dataframe": landed()})
    assert not result.success
    (key,) = result.run_results
    assert (v.data_docs_dir(root) / "validations" / f"{'/'.join(key.to_tuple())}.html").is_file()
    assert (v.data_docs_dir(root) / "index.html").is_file()
    # our checkpoint run sees the edit, for labelled and (re-derived) unlabelled batches alike
    assert _failing(validate(root, landed())) == {"numeric_ranges"}
    assert _failing(validate(root, landed().drop(columns=[dd.TARGET]), labelled=False)) == {"numeric_ranges"}


def test_an_expectation_without_a_check_category_is_an_error_naming_it(
    tmp_path: Path, landed: Callable[..., pd.DataFrame]
) -> None:
    import great_expectations as gx

    root = _copy_project(tmp_path)
    suite = gx.get_context(mode="file", project_root_dir=str(root)).suites.get("landed_batch")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="age", max_value=99))
    suite.save()
    with pytest.raises(ValueError, match=r"landed_batch.json`: `expect_column_values_to_be_between` age has meta"):
        validate(root, landed())


def test_each_run_has_its_data_docs_page(root: Path, landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    df.loc[:3, "age"] = 400
    report = validate(root, df, "old age.csv")
    assert report.page.startswith("validations/landed_batch/old age.csv/")
    html = (v.data_docs_dir(root) / report.page).read_text()
    assert "old age.csv" in html and "400" in html  # the run name, and the unexpected value
    assert v.data_docs_dir(root) == root / "gx" / "uncommitted" / "data_docs" / "local_site"


def test_runs_leave_the_committed_project_unchanged(tmp_path: Path, landed: Callable[..., pd.DataFrame]) -> None:
    root = _copy_project(tmp_path)
    before = _tracked(root)
    validate(root, landed())
    validate(root, landed(bad="unknown_category"), "bad.csv")
    validate(root, landed().drop(columns=[dd.TARGET]), "unlabelled.csv", labelled=False)
    assert _tracked(root) == before
    assert (root / "gx" / ".gitignore").read_text().split() == ["uncommitted/"]


def test_the_context_is_opened_once_per_process(root: Path) -> None:
    assert v.open_context(str(root.resolve())) is v.open_context(str(root.resolve()))


@pytest.mark.parametrize(
    ("base", "page", "url"),
    [
        (
            "http://127.0.0.1:3002/",
            "validations/s/b.csv/20261125T1Z/a-b.html",
            "http://127.0.0.1:3002/validations/s/b.csv/20261125T1Z/a-b.html",
        ),
        ("http://docs.internal/gx", "/index.html", "http://docs.internal/gx/index.html"),
        ("http://h/", "validations/s/batch 1#2.csv/x.html", "http://h/validations/s/batch%201%232.csv/x.html"),
    ],
)
def test_data_docs_links_are_urls_under_the_served_folder(base: str, page: str, url: str) -> None:
    assert v.data_docs_url(base, page) == url


def test_suite_path_must_be_where_gx_keeps_suites() -> None:
    assert v.suite_name("gx/expectations/landed_batch.json") == "landed_batch"
    with pytest.raises(ValueError, match=r"`gx/landed_batch.json`; GX keeps suites at `gx/expectations/<name>.json`"):
        v.suite_name("gx/landed_batch.json")


# --- verdicts ----------------------------------------------------------------------------------


def test_good_batch_passes_every_check(good_report: v.ValidationReport) -> None:
    assert good_report.success and not good_report.inferred
    assert list(good_report.verdicts) == list(si.CHECK_CATEGORIES)
    assert set(_statuses(good_report).values()) == {"passed"}
    assert all(verdict.outcomes for verdict in good_report.verdicts.values())


def test_parquet_and_extension_dtypes_pass(root: Path, landed: Callable[..., pd.DataFrame]) -> None:
    assert validate(root, landed(fmt="parquet"), "good.parquet").success
    df = landed().astype({"contract": "category", "region": "string", "payment_method": "string[pyarrow]"})
    df["tenure_months"] = df["tenure_months"].astype("Int64")
    assert validate(root, df, "extension_dtypes.csv").success


def test_missing_column_fails_its_expectations_and_says_so(root: Path, landed: Callable[..., pd.DataFrame]) -> None:
    report = validate(root, landed().drop(columns=["region"]), "no_region.csv")
    about_region = [o for verdict in report.verdicts.values() for o in verdict.outcomes if o.column == "region"]
    assert about_region and not any(o.success for o in about_region)
    assert {o.observed for o in about_region} <= {"column missing", "column missing: region"}
    (dupes,) = report.verdicts["duplicates"].outcomes
    assert dupes.observed == "column missing: region"


def test_outcomes_carry_what_was_expected_and_observed(root: Path, landed: Callable[..., pd.DataFrame]) -> None:
    df = landed()
    df.loc[:4, "age"] = 400
    report = validate(root, df, "old.csv")
    assert _failing(report) == {"numeric_ranges"}
    (age,) = report.verdicts["numeric_ranges"].failures()
    assert age.column == "age" and age.observed["partial_unexpected_list"] == [400] * 5
    assert age.expected.startswith("min_value=") and age.observed["unexpected_count"] == 5
    nulls = {o.column: o for o in report.verdicts["null_limits"].outcomes}
    assert nulls["monthly_charges"].expected == "mostly=0.9"
    assert nulls["total_charges"].observed["unexpected_percent"] > 0
    types = {o.column: o for o in report.verdicts["columns_and_dtypes"].outcomes if "type_list" in o.expected}
    assert types["tenure_months"].observed == "int64"
    (rows,) = report.verdicts["row_count"].outcomes
    assert (rows.observed, rows.expected) == (600, "min_value=50")
    json.dumps([o.observed for verdict in report.verdicts.values() for o in verdict.outcomes])


@pytest.mark.parametrize(("drift", "label_shift"), [(1.0, 0.0), (0.0, 1.0)])
def test_drift_is_not_invalid_data(
    root: Path, landed: Callable[..., pd.DataFrame], drift: float, label_shift: float
) -> None:
    assert validate(root, landed(rows=1200, covariate_drift=drift, label_shift=label_shift)).success


# --- unlabelled batches ------------------------------------------------------------------------


def test_unlabelled_batch_skips_the_target_check_and_judges_the_others(
    root: Path, landed: Callable[..., pd.DataFrame]
) -> None:
    unlabelled = landed().drop(columns=[dd.TARGET])
    report = validate(root, unlabelled, "scoring.csv", labelled=False)
    assert _statuses(report) == {c: "skipped" if c == "target" else "passed" for c in si.CHECK_CATEGORIES}
    assert not any(o.column == dd.TARGET for verdict in report.verdicts.values() for o in verdict.outcomes)
    assert report.page.startswith("validations/landed_batch_unlabelled/")
    broken = dd.corrupt_batch(landed(), kind="unknown_category", seed=1).drop(columns=[dd.TARGET])
    assert _failing(validate(root, broken, "scoring_bad.csv", labelled=False)) == {"categorical_domains"}
    # a batch that should carry labels and does not still fails
    assert {"target", "columns_and_dtypes"} <= _failing(validate(root, unlabelled, "lost_labels.csv"))


# --- the first batch ---------------------------------------------------------------------------


def test_first_batch_is_judged_only_by_what_params_fix(tmp_path: Path, landed: Callable[..., pd.DataFrame]) -> None:
    root = _copy_project(tmp_path, suite=False)
    first = validate(root, landed(seed=31), "first.csv")
    assert first.inferred and first.kept and first.success
    not_judged = {"columns_and_dtypes", "numeric_ranges", "categorical_domains"}
    assert _statuses(first) == {c: "not_judged" if c in not_judged else "passed" for c in si.CHECK_CATEGORIES}
    assert (root / SUITE_PATH).is_file() and (root / "gx" / "checkpoints" / "landed_batch.json").is_file()
    second = landed(seed=32)
    second.loc[:4, "age"] = 400
    report = validate(root, second, "second.csv")
    assert not report.inferred and _failing(report) == {"numeric_ranges"}


@pytest.mark.parametrize(("rows", "single_class", "failed"), [(30, False, {"row_count"}), (600, True, {"target"})])
def test_a_bad_first_batch_does_not_become_the_reference(
    tmp_path: Path, landed: Callable[..., pd.DataFrame], rows: int, single_class: bool, failed: set[str]
) -> None:
    root = _copy_project(tmp_path, suite=False)
    first = landed(rows=rows, seed=33)
    first = first[first[dd.TARGET] == 0] if single_class else first
    report = validate(root, first, "first.csv")
    assert report.inferred and not report.kept and _failing(report) == failed
    assert not (root / SUITE_PATH).exists()
    assert not list((root / "gx" / "checkpoints").glob("*.json"))
    assert validate(root, landed(seed=34), "next.csv").inferred  # the next batch infers afresh


def test_first_batch_without_the_target_cannot_define_the_suite(
    tmp_path: Path, landed: Callable[..., pd.DataFrame]
) -> None:
    root = _copy_project(tmp_path, suite=False)
    with pytest.raises(ValueError, match=r"batch `x.csv`: no suite .* target `churned` is not a column"):
        validate(root, landed().drop(columns=[dd.TARGET]), "x.csv")


# --- inference ---------------------------------------------------------------------------------


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
    spec = si.InferenceSpec("y", ["id"], {"zip": "categorical"}, 1, 0.2, 0.05, 2)
    suite = si.infer_suite(df, name="s", spec=spec).to_json_dict()
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
    assert kwargs("column_values_to_not_be_null", "y") == {}  # GX leaves out mostly=1.0, its default
    assert kwargs("column_values_to_be_in_type_list", "pos")["type_list"] == list(si.NUMERIC_TYPE_LIST)
    assert kwargs("column_values_to_be_in_type_list", "color")["type_list"] == ["str", "StringDtype"]
    assert kwargs("column_values_to_be_in_type_list", "flag")["type_list"] == ["bool", "BooleanDtype"]
    dupes = kwargs("compound_columns_to_be_unique", None)
    assert dupes == {"column_list": ["pos", "neg", "small", "zip", "flag", "color", "y"], "mostly": 0.95}
    assert kwargs("column_unique_value_count_to_be_between", "y") == {"min_value": 2}
    assert suite["meta"]["ml_assets"]["column_kinds"]["zip"] == "categorical"
    assert {e["meta"]["check"] for e in suite["expectations"]} == set(si.CHECK_CATEGORIES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, r"target `nope` is not a column"),
        ({"id_columns": ["nope"]}, r"id column `nope` is not a column"),
        ({"feature_types": {"contract": "numeric"}}, r"column `contract`: feature_types says numeric"),
        ({"feature_types": {"age": "ordinal"}}, r"`age: ordinal` must name a feature"),
        ({"feature_types": {"nope": "numeric"}}, r"`nope: numeric` must name a feature"),
        ({"max_null_fraction": 1.0}, r"`validation.max_null_fraction` is 1.0"),
    ],
)
def test_infer_suite_errors_name_the_problem(change: dict[str, Any], message: str) -> None:
    df = dd.generate_batch(n_rows=80, seed=1, batch_date=DAY)
    spec = si.InferenceSpec(**(vars(SPEC) | change))
    with pytest.raises(ValueError, match=message):
        si.infer_suite(df, name="s", spec=spec)


def test_module_import_is_light() -> None:
    code = (
        "import sys, ml_assets.lib.validation; "
        "print(sorted(m for m in ('dagster', 'great_expectations', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
