r"""A thin Great Expectations 1.x wrapper: infer a suite from good data, validate batches.

`dagster-ge` only supports GX 0.x, so this module talks to the GX 1.x API directly:
`infer_suite` builds a GX `ExpectationSuite` from a sample of good data and returns GX's own
JSON form of it (kept in the repository, see `save_suite`), and `validate_batch` runs such a
suite against a pandas frame in an ephemeral, in-memory GX context (no files written, no
analytics, no progress bars) and condenses the result into a `ValidationReport`.

Every expectation carries `meta: {"check": <category>}` with a category from
`CHECK_CATEGORIES`; each category becomes one blocking Dagster asset check:

* `columns_and_dtypes`: every column exists and has its dtype family (numeric, string or
  boolean).
* `null_limits`: features are at most `max_null_fraction` null; the target and ids never.
* `numeric_ranges`: numeric features stay within the observed range widened by half the
  observed span on each side (clamped at 0 when the observed minimum is >= 0).
* `categorical_domains`: categorical features and the target only take observed values.
* `target`: the target exists and has at least `min_classes` distinct values.
* `row_count`: at least `min_rows` rows.
* `duplicates`: at most `max_duplicate_fraction` of rows have an exact twin over all non-id
  columns (GX counts every copy, the first one included).

The committed demo suite `gx/landed_batch.json` is reproduced, from the repository root and
with an empty scratch folder, by::

    python -m ml_assets.lib.demo_data --landing /tmp/gx_sample --batches 4 --rows 1200 \
        --seed 7 --start-date 2026-11-01
    python -m ml_assets.lib.validation infer --landing /tmp/gx_sample \
        --out gx/landed_batch.json --target churned --id-columns customer_id \
        --min-rows 50 --max-null-fraction 0.10 --max-duplicate-fraction 0.05 \
        --min-classes 2

and a landed file is checked by hand with::

    python -m ml_assets.lib.validation validate --suite gx/landed_batch.json \
        data/landing/batch_2026-11-01.csv [--html reports/]

This module is pure logic: it never imports Dagster, and Great Expectations is imported
only inside the functions that need it (it takes seconds to import).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from great_expectations.data_context.types.base import DataContextConfig
    from great_expectations.expectations.expectation import Expectation

CHECK_CATEGORIES = (
    "columns_and_dtypes",
    "null_limits",
    "numeric_ranges",
    "categorical_domains",
    "target",
    "row_count",
    "duplicates",
)

FEATURE_KINDS = ("numeric", "categorical")

# Type names GX resolves for pandas: numpy dtype names and pandas extension dtype class
# names compare against the column dtype; "int"/"float"/"str"/"bool" are also checked per
# value when a column has dtype `object`.
NUMERIC_TYPE_LIST = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "UInt8Dtype",
    "UInt16Dtype",
    "UInt32Dtype",
    "UInt64Dtype",
    "Float32Dtype",
    "Float64Dtype",
    "int",
    "float",
)
STRING_TYPE_LIST = ("str", "StringDtype")
BOOLEAN_TYPE_LIST = ("bool", "BooleanDtype")
_TYPE_LISTS = {
    "numeric": NUMERIC_TYPE_LIST,
    "string": STRING_TYPE_LIST,
    "boolean": BOOLEAN_TYPE_LIST,
}

_META_KEY = "check"
_ORDER_KEY = "ml_assets_order"  # added to a runtime copy of meta only, never saved
_RESULT_FORMAT = "BASIC"
_PARTIAL_LIST_LEN = 5
_PARTIAL_ROWS_LEN = 2
_TEXT_LIMIT = 160
_BATCH_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one batch.

    Attributes:
        check: The category from `CHECK_CATEGORIES` the expectation belongs to.
        expectation: The GX expectation type, e.g. "expect_column_values_to_not_be_null".
        column: The column it is about, or None for table-level and multi-column ones.
        success: Whether it passed.
        observed: A short JSON-able summary of what was seen: GX's observed value, a dict
            with the unexpected percent and a few unexpected values, or a short message.
        expected: The expectation's arguments as a short string, e.g. "mostly=0.9".
    """

    check: str
    expectation: str
    column: str | None
    success: bool
    observed: Any
    expected: str

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as a JSON-able dict.

        Returns:
            A dict with one key per attribute.
        """
        return {
            "check": self.check,
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed": self.observed,
            "expected": self.expected,
        }


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one batch against a suite.

    Attributes:
        batch_name: The batch's name, e.g. its file name.
        outcomes: One outcome per expectation, in suite order.
        success: Whether every expectation passed.
    """

    batch_name: str
    outcomes: tuple[ExpectationOutcome, ...]
    success: bool

    def by_check(self) -> dict[str, tuple[ExpectationOutcome, ...]]:
        """Group the outcomes by check category.

        Returns:
            A dict with every category of `CHECK_CATEGORIES`, in that order, mapped to its
            outcomes (an empty tuple when the suite has none for it).
        """
        return {check: tuple(o for o in self.outcomes if o.check == check) for check in CHECK_CATEGORIES}

    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """Return the outcomes that failed.

        Returns:
            The failed outcomes, in suite order.
        """
        return tuple(o for o in self.outcomes if not o.success)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-able dict.

        Returns:
            A dict with `batch_name`, `success` and `outcomes` (a list of dicts).
        """
        return {
            "batch_name": self.batch_name,
            "success": self.success,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def to_html(self) -> str:
        """Render the report as a small self-contained HTML page (our Data Docs).

        Returns:
            An HTML document with inline CSS: a summary per check, then one table row per
            expectation with its column, expected and observed values and pass/fail.
        """
        esc = html.escape
        passed = sum(o.success for o in self.outcomes)
        status = "PASSED" if self.success else "FAILED"
        summary_rows = []
        for check, outcomes in self.by_check().items():
            ok = all(o.success for o in outcomes)
            summary_rows.append(
                f'<tr class="{"pass" if ok else "fail"}"><td>{esc(check)}</td>'
                f"<td>{sum(o.success for o in outcomes)}/{len(outcomes)}</td>"
                f"<td>{'pass' if ok else 'FAIL'}</td></tr>"
            )
        detail_rows = []
        for o in self.outcomes:
            observed = o.observed if isinstance(o.observed, str) else _json_text(o.observed)
            detail_rows.append(
                f'<tr class="{"pass" if o.success else "fail"}">'
                f"<td>{esc(o.check)}</td><td>{esc(o.expectation)}</td>"
                f"<td>{esc(o.column or '')}</td><td>{esc(o.expected)}</td>"
                f"<td>{esc(observed)}</td><td>{'pass' if o.success else 'FAIL'}</td></tr>"
            )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f"<title>Validation: {esc(self.batch_name)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
            "table{border-collapse:collapse;margin-bottom:1.5em}"
            "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
            "vertical-align:top;font-size:13px}"
            "th{background:#f0f0f0}tr.pass td:last-child{color:#1a7f37}"
            "tr.fail{background:#fff0f0}tr.fail td:last-child{color:#cf222e;"
            "font-weight:bold}"
            "</style></head><body>\n"
            f"<h1>{esc(self.batch_name)}: {status}</h1>\n"
            f"<p>{passed} of {len(self.outcomes)} expectations passed.</p>\n"
            "<table><tr><th>check</th><th>passed</th><th>result</th></tr>"
            + "".join(summary_rows)
            + "</table>\n<table><tr><th>check</th><th>expectation</th><th>column</th>"
            "<th>expected</th><th>observed</th><th>result</th></tr>"
            + "".join(detail_rows)
            + "</table>\n</body></html>\n"
        )


def infer_suite(
    df: pd.DataFrame,
    *,
    name: str,
    target: str,
    id_columns: Sequence[str],
    feature_types: Mapping[str, str],
    min_rows: int,
    max_null_fraction: float,
    max_duplicate_fraction: float,
    min_classes: int,
) -> dict[str, Any]:
    """Build a GX 1.x expectation suite from a sample of good data.

    This is how a user's own data, with any schema, gets a suite without code changes.
    Numeric columns (or those forced to "numeric") get range expectations; every other
    feature, and the target, gets a domain of its observed values.

    Args:
        df: A sample of good data, e.g. the first batches, as read from the landing files.
        name: The suite's name.
        target: The label column.
        id_columns: Columns kept for lineage; they must be non-null but get no range,
            domain or duplicate expectation.
        feature_types: Optional overrides, column -> "numeric" or "categorical"; other
            columns are numeric when their dtype is and categorical otherwise.
        min_rows: Fewest rows a batch may have.
        max_null_fraction: Largest share of nulls allowed in a feature column.
        max_duplicate_fraction: Largest share of rows allowed to have an exact twin over
            the non-id columns.
        min_classes: Fewest distinct target values a batch must have.

    Returns:
        GX's JSON form of the suite (`ExpectationSuite.to_json_dict()`), whose suite meta
        also records the target, id columns and column kinds under "ml_assets".

    Raises:
        ValueError: If an argument is out of range, a named column is missing, a column
            cannot have the kind `feature_types` asks for, or the sample's target has
            fewer than `min_classes` values.
    """
    _check_infer_args(
        df,
        name=name,
        target=target,
        id_columns=id_columns,
        feature_types=feature_types,
        min_rows=min_rows,
        max_null_fraction=max_null_fraction,
        max_duplicate_fraction=max_duplicate_fraction,
        min_classes=min_classes,
    )
    gx = _import_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite

    df = _normalize_frame(df)
    ids = list(dict.fromkeys(id_columns))
    columns = [str(c) for c in df.columns]
    frame_columns = {c: _column(df, c) for c in columns}
    families = {c: _dtype_family(frame_columns[c]) for c in columns}
    kinds: dict[str, str] = {}
    for c in columns:
        if c in ids:
            kinds[c] = "id"
        elif c == target:
            kinds[c] = "target"
        else:
            kinds[c] = feature_types.get(c) or ("numeric" if families[c] == "numeric" else "categorical")
            if kinds[c] == "numeric" and families[c] != "numeric":
                raise ValueError(
                    f"sample: column `{c}`: feature_types says numeric but its values are "
                    f"{frame_columns[c].dtype} ({families[c]}); convert the column upstream or drop "
                    "the override"
                )

    n_classes = int(df[target].nunique(dropna=True))
    if n_classes < min_classes:
        raise ValueError(
            f"sample: target `{target}` has {n_classes} distinct value(s), fewer than "
            f"min_classes={min_classes}; infer the suite from more (or better) batches"
        )

    by_check: dict[str, list[Expectation]] = {c: [] for c in CHECK_CATEGORIES}

    def add(check: str, expectation: Expectation) -> None:
        by_check[check].append(expectation)

    ex = gx.expectations
    feature_mostly = _fraction(1.0 - max_null_fraction)
    for c in columns:
        add("columns_and_dtypes", ex.ExpectColumnToExist(column=c, meta={_META_KEY: "columns_and_dtypes"}))
        add(
            "columns_and_dtypes",
            ex.ExpectColumnValuesToBeInTypeList(
                column=c, type_list=list(_TYPE_LISTS[families[c]]), meta={_META_KEY: "columns_and_dtypes"}
            ),
        )
        mostly = 1.0 if kinds[c] in ("id", "target") else feature_mostly
        add(
            "null_limits",
            ex.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly, meta={_META_KEY: "null_limits"}),
        )
        if kinds[c] == "numeric":
            bounds = _widened_range(frame_columns[c])
            if bounds is not None:
                add(
                    "numeric_ranges",
                    ex.ExpectColumnValuesToBeBetween(
                        column=c,
                        min_value=bounds[0],
                        max_value=bounds[1],
                        meta={_META_KEY: "numeric_ranges"},
                    ),
                )
        elif kinds[c] in ("categorical", "target"):
            add(
                "categorical_domains",
                ex.ExpectColumnValuesToBeInSet(
                    column=c,
                    value_set=_observed_values(frame_columns[c]),
                    meta={_META_KEY: "categorical_domains"},
                ),
            )

    add("target", ex.ExpectColumnToExist(column=target, meta={_META_KEY: "target"}))
    add(
        "target",
        ex.ExpectColumnUniqueValueCountToBeBetween(
            column=target, min_value=min_classes, max_value=None, meta={_META_KEY: "target"}
        ),
    )
    add(
        "row_count",
        ex.ExpectTableRowCountToBeBetween(min_value=min_rows, max_value=None, meta={_META_KEY: "row_count"}),
    )
    non_id = [c for c in columns if c not in ids]
    add(
        "duplicates",
        ex.ExpectCompoundColumnsToBeUnique(
            column_list=non_id,
            mostly=_fraction(1.0 - max_duplicate_fraction),
            meta={_META_KEY: "duplicates"},
        ),
    )

    suite = ExpectationSuite(
        name=name,
        expectations=[e for check in CHECK_CATEGORIES for e in by_check[check]],
        meta={
            "great_expectations_version": gx.__version__,
            "ml_assets": {
                "target": target,
                "id_columns": ids,
                "column_kinds": kinds,
                "inferred_from_rows": len(df),
            },
        },
    )
    return suite.to_json_dict()


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a suite saved by `save_suite` and check its structure.

    This does not import Great Expectations; `validate_batch` checks each expectation's
    arguments when it builds the GX objects.

    Args:
        path: The suite's JSON file.

    Returns:
        The suite as a dict (GX's JSON form).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not JSON or not a suite whose expectations all carry a
            known `meta.check` category.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"suite `{path}` not found: infer one with `python -m ml_assets.lib.validation "
            "infer --landing DIR --out PATH ...` (see the module docstring)"
        )
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"suite `{path}`: not valid JSON ({exc}); fix or re-infer it") from exc
    _check_suite_structure(suite, where=f"suite `{path}`")
    return suite


def save_suite(suite: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a suite as pretty, key-sorted JSON, so git diffs stay small and stable.

    Args:
        suite: A suite dict, e.g. from `infer_suite`.
        path: Where to write; parent folders are created. Written atomically.

    Raises:
        ValueError: If the suite's structure is invalid.
    """
    path = Path(path)
    _check_suite_structure(suite, where=f"suite for `{path}`")
    text = json.dumps(suite, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def validate_batch(df: pd.DataFrame, suite: Mapping[str, Any], *, batch_name: str) -> ValidationReport:
    """Run a suite against one batch with an ephemeral, in-memory GX context.

    Nothing is written to disk and no analytics are sent. A column missing from the frame
    makes the expectations about it fail (with observed "column missing"), it does not
    raise. Categorical and extension string/numeric dtypes are viewed as plain object or
    nullable numpy-style columns first, so dtype checks behave the same for CSV, Parquet
    and pandas 3 string columns; `df` itself is not modified.

    Args:
        df: The batch.
        suite: A suite dict from `infer_suite` or `load_suite`.
        batch_name: The batch's name (e.g. its file name), used in the report and errors.

    Returns:
        The report, one outcome per expectation in suite order.

    Raises:
        ValueError: If the suite is malformed or the frame has duplicate column names.
        RuntimeError: If GX returns a different number of results than expectations.
    """
    where = f"batch `{batch_name}`"
    _check_suite_structure(suite, where=f"{where}: suite")
    duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated:
        raise ValueError(
            f"{where}: duplicate column name(s) {', '.join(f'`{c}`' for c in duplicated)}; "
            "rename them before validating"
        )
    expectations = _build_expectations(suite, where=where)
    gx = _import_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite

    context = gx.get_context(mode="ephemeral", project_config=_context_config())
    batch_definition = (
        context.data_sources.add_pandas("ml_assets")
        .add_dataframe_asset("landed_batch")
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": _normalize_frame(df)})
    gx_suite = ExpectationSuite(name=str(suite["name"]), expectations=expectations)
    result = batch.validate(gx_suite, result_format=_RESULT_FORMAT)

    present = {str(c) for c in df.columns}
    ranked: list[tuple[int, ExpectationOutcome]] = []
    for r in result.results:
        config = r.expectation_config
        meta = dict(config.meta or {})
        order = int(meta[_ORDER_KEY])
        ranked.append(
            (order, _outcome(r, meta[_META_KEY], present, mostly=getattr(expectations[order], "mostly", None)))
        )
    outcomes = tuple(o for _, o in sorted(ranked, key=lambda item: item[0]))
    if len(outcomes) != len(expectations):
        raise RuntimeError(
            f"{where}: GX returned {len(outcomes)} results for {len(expectations)} "
            "expectations; report this with the suite attached"
        )
    return ValidationReport(
        batch_name=batch_name,
        outcomes=outcomes,
        success=all(o.success for o in outcomes),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line: `infer` a suite from landed batches, or `validate` batch files.

    Args:
        argv: Arguments without the program name; `None` reads `sys.argv`.

    Returns:
        The exit code: 0 on success, 1 if `validate` found a failing batch.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.lib.validation",
        description="Infer a Great Expectations 1.x suite, or validate batch files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    infer = sub.add_parser("infer", help="infer a suite from the batch files in a folder")
    infer.add_argument("--landing", type=Path, required=True, help="folder of batch files")
    infer.add_argument("--out", type=Path, required=True, help="suite JSON to write")
    infer.add_argument("--name", default=None, help="suite name (default: --out's stem)")
    infer.add_argument("--target", required=True)
    infer.add_argument("--id-columns", nargs="*", default=[])
    infer.add_argument(
        "--feature-type",
        action="append",
        default=[],
        metavar="COLUMN=KIND",
        help="force a column to numeric or categorical; repeatable",
    )
    infer.add_argument("--min-rows", type=int, default=50)
    infer.add_argument("--max-null-fraction", type=float, default=0.10)
    infer.add_argument("--max-duplicate-fraction", type=float, default=0.05)
    infer.add_argument("--min-classes", type=int, default=2)

    validate = sub.add_parser("validate", help="validate batch files against a suite")
    validate.add_argument("--suite", type=Path, required=True)
    validate.add_argument(
        "--html", type=Path, default=None, metavar="DIR", help="write one HTML report per file, DIR/<file>.html"
    )
    validate.add_argument("files", type=Path, nargs="+")

    args = parser.parse_args(argv)
    try:
        if args.command == "infer":
            return _main_infer(args)
        return _main_validate(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    return 2  # unreachable: parser.error exits


def _main_infer(args: argparse.Namespace) -> int:
    feature_types: dict[str, str] = {}
    for item in args.feature_type:
        column, sep, kind = item.partition("=")
        if not sep or not column:
            raise ValueError(f"--feature-type {item!r}: write it as COLUMN=numeric|categorical")
        feature_types[column] = kind
    files = _batch_files(args.landing)
    df = pd.concat([_read_batch(p) for p in files], ignore_index=True)
    suite = infer_suite(
        df,
        name=args.name or args.out.stem,
        target=args.target,
        id_columns=args.id_columns,
        feature_types=feature_types,
        min_rows=args.min_rows,
        max_null_fraction=args.max_null_fraction,
        max_duplicate_fraction=args.max_duplicate_fraction,
        min_classes=args.min_classes,
    )
    save_suite(suite, args.out)
    print(f"{args.out}: {len(suite['expectations'])} expectations from {len(files)} file(s), {len(df)} rows")
    return 0


def _main_validate(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    reports = [validate_batch(_read_batch(p), suite, batch_name=p.name) for p in args.files]
    for report in reports:
        print(f"{report.batch_name}: {'PASSED' if report.success else 'FAILED'}")
        for check, outcomes in report.by_check().items():
            failed = [o for o in outcomes if not o.success]
            print(f"  {check}: {'ok' if not failed else f'{len(failed)} failed'}")
            for o in failed:
                print(f"    {o.expectation} {o.column or ''} {o.expected} -> {_json_text(o.observed)}")
    if args.html is not None:
        args.html.mkdir(parents=True, exist_ok=True)
        for report in reports:
            page = args.html / f"{report.batch_name}.html"
            page.write_text(report.to_html(), encoding="utf-8")
            print(f"wrote {page}")
    return 0 if all(r.success for r in reports) else 1


def _import_gx() -> Any:
    """Import Great Expectations (slow: seconds) with analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _context_config() -> DataContextConfig:
    """Build an in-memory context config: no stores on disk, no analytics, no progress bars."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )


def _check_infer_args(
    df: pd.DataFrame,
    *,
    name: str,
    target: str,
    id_columns: Sequence[str],
    feature_types: Mapping[str, str],
    min_rows: int,
    max_null_fraction: float,
    max_duplicate_fraction: float,
    min_classes: int,
) -> None:
    """Raise ValueError naming the first bad argument of `infer_suite`."""
    if not name:
        raise ValueError("infer_suite: `name` must be a non-empty string")
    if df.empty:
        raise ValueError("sample: no rows; infer the suite from at least one good batch")
    if isinstance(id_columns, str):
        raise ValueError(f"id_columns={id_columns!r}: pass a list of column names, e.g. [{id_columns!r}]")
    columns = [str(c) for c in df.columns]
    if len(set(columns)) != len(columns):
        raise ValueError("sample: duplicate column names; rename them before inferring")
    for role, names in (("target", [target]), ("id column", list(id_columns))):
        for c in names:
            if c not in columns:
                raise ValueError(
                    f"sample: {role} `{c}` is not a column (columns: {', '.join(columns)}); "
                    "fix params.yaml `data` or the data"
                )
    if target in id_columns:
        raise ValueError(f"target `{target}` is also listed in id_columns; remove it there")
    for c, kind in feature_types.items():
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature_types: column `{c}` has kind {kind!r}; use one of {', '.join(FEATURE_KINDS)}")
        if c not in columns:
            raise ValueError(f"feature_types: column `{c}` is not in the sample; remove it")
        if c == target or c in id_columns:
            raise ValueError(f"feature_types: column `{c}` is the target or an id; types apply to features")
    if min_rows < 0:
        raise ValueError(f"min_rows={min_rows}: must be >= 0")
    if min_classes < 1:
        raise ValueError(f"min_classes={min_classes}: must be >= 1")
    for label, value in (
        ("max_null_fraction", max_null_fraction),
        ("max_duplicate_fraction", max_duplicate_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{label}={value}: must be in [0, 1)")


def _check_suite_structure(suite: Any, *, where: str) -> None:
    """Raise ValueError unless `suite` looks like a GX suite dict tagged with our checks."""
    if not isinstance(suite, Mapping) or not isinstance(suite.get("expectations"), list):
        raise ValueError(f"{where}: not a GX suite (expected an object with an `expectations` list)")
    if not suite.get("name"):
        raise ValueError(f"{where}: the suite has no `name`")
    for i, e in enumerate(suite["expectations"]):
        if not isinstance(e, Mapping) or "type" not in e or "kwargs" not in e:
            raise ValueError(f"{where}: expectation #{i} lacks `type` or `kwargs`")
        check = (e.get("meta") or {}).get(_META_KEY)
        if check not in CHECK_CATEGORIES:
            raise ValueError(
                f"{where}: expectation #{i} `{e['type']}` has meta.check={check!r}; set it "
                f"to one of {', '.join(CHECK_CATEGORIES)}"
            )


def _build_expectations(suite: Mapping[str, Any], *, where: str) -> list[Expectation]:
    """Build GX expectation objects for the suite, each tagged with its position in meta.

    GX's own `ExpectationSuite(**dict)` logs and silently drops an invalid expectation;
    building them one by one turns that into an error that names the expectation.
    """
    _import_gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    built: list[Expectation] = []
    for i, raw in enumerate(suite["expectations"]):
        meta = {**(raw.get("meta") or {}), _ORDER_KEY: i}
        try:
            config = ExpectationConfiguration(type=raw["type"], kwargs=dict(raw["kwargs"]), meta=meta)
            built.append(config.to_domain_obj())
        except Exception as exc:  # GX raises several unrelated types here
            raise ValueError(
                f"{where}: expectation #{i} `{raw['type']}` is invalid for GX "
                f"{_import_gx().__version__}: {exc}; fix or re-infer the suite"
            ) from exc
    return built


def _outcome(result: Any, check: str, present: set[str], *, mostly: float | None) -> ExpectationOutcome:
    """Condense one GX `ExpectationValidationResult`.

    GX leaves `mostly` out of the kwargs when it has its default of 1.0; `mostly` is the
    expectation's actual value, shown in `expected` either way.
    """
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    if mostly is not None and "mostly" not in kwargs:
        kwargs["mostly"] = float(mostly)
    column = kwargs.get("column")
    wanted = [column] if column is not None else list(kwargs.get("column_list") or [])
    missing = [c for c in wanted if c not in present]
    success = bool(result.success)
    observed: Any
    if config.type == "expect_column_to_exist":
        observed = "present" if success else "column missing"
    elif missing and not success:
        observed = f"column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
    else:
        error = _exception_message(result.exception_info)
        observed = f"error: {error}"[:_TEXT_LIMIT] if error else _observed(result.result)
    return ExpectationOutcome(
        check=check,
        expectation=str(config.type),
        column=None if column is None else str(column),
        success=success,
        observed=observed,
        expected=_expected_text(config.type, kwargs),
    )


def _exception_message(info: Any) -> str | None:
    """Return the first exception message in GX's `exception_info` (two shapes exist)."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "exception")
            return message.splitlines()[0] if message else "exception"
    return None


def _observed(result: Mapping[str, Any] | None) -> Any:
    """Summarize GX's `result` dict."""
    if not result:
        return None
    if "observed_value" in result:
        return _jsonable(result["observed_value"])
    if "unexpected_percent" in result:
        percent = result.get("unexpected_percent")
        partial = list(result.get("partial_unexpected_list") or [])
        # Multi-column expectations list whole rows; keep fewer of those.
        limit = _PARTIAL_ROWS_LEN if partial and isinstance(partial[0], Mapping) else _PARTIAL_LIST_LEN
        return {
            "unexpected_percent": None if percent is None else round(float(percent), 3),
            "unexpected_count": _jsonable(result.get("unexpected_count")),
            "partial_unexpected_list": _jsonable(partial[:limit]),
        }
    return None


def _expected_text(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    """Render the expectation's arguments as a short string, e.g. "min_value=0, max_value=9"."""
    if expectation_type == "expect_column_to_exist":
        return "present"
    parts = []
    for key, value in kwargs.items():
        if key in ("column", "batch_id") or value is None:
            continue
        if isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value[:8])
            more = f", ... (+{len(value) - 8})" if len(value) > 8 else ""
            parts.append(f"{key}=[{shown}{more}]")
        else:
            parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars, NaN and containers into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return a view of `df` whose dtypes GX's pandas type checks understand.

    GX compares a column's dtype with `==` against the type names in the suite, which
    cannot express categoricals, Arrow-backed strings or pandas 3's "str" dtype; those
    become object columns (values are then type-checked one by one). Arrow numerics
    become pandas nullable dtypes.
    """
    converted: dict[str, pd.Series] = {}
    for column in df.columns:
        series = _column(df, column)
        dtype = series.dtype
        is_extension_string = isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_string_dtype(
            dtype
        )
        if isinstance(dtype, pd.CategoricalDtype) or is_extension_string:
            converted[column] = series.astype(object)
        elif isinstance(dtype, pd.ArrowDtype):
            if pd.api.types.is_bool_dtype(dtype):
                converted[column] = series.astype("boolean")
            elif pd.api.types.is_integer_dtype(dtype):
                converted[column] = series.astype("Int64")
            elif pd.api.types.is_float_dtype(dtype):
                converted[column] = series.astype("Float64")
            else:
                converted[column] = series.astype(object)
    if not converted:
        return df
    out = df.copy(deep=False)
    for column, series in converted.items():
        out[column] = series
    return out


def _dtype_family(series: pd.Series) -> str:
    """Classify a column as "numeric", "boolean" or "string" by dtype (object columns: by values)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if inferred == "boolean":
        return "boolean"
    return "string"


def _column(df: pd.DataFrame, name: Any) -> pd.Series:
    """Return one column as a Series; a repeated column name is an error."""
    column = df[name]
    if not isinstance(column, pd.Series):
        raise ValueError(f"column `{name}` appears more than once; rename the duplicates")
    return column


def _widened_range(series: pd.Series) -> tuple[float, float] | None:
    """Return the observed [min, max] widened by half the span each side; None if all null."""
    values = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    pad = (high - low) / 2.0
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    is_integer = pd.api.types.is_integer_dtype(series.dtype) or bool(np.all(values == np.round(values)))
    if is_integer:
        return float(math.floor(lo)), float(math.ceil(hi))
    return math.floor(lo * 1e4) / 1e4, math.ceil(hi * 1e4) / 1e4


def _observed_values(series: pd.Series) -> list[Any]:
    """Return the distinct non-null values as plain JSON values, sorted stably."""
    values = {_jsonable(v) for v in series.dropna().unique()}
    values.discard(None)
    return sorted(values, key=lambda v: (type(v).__name__, v))


def _fraction(value: float) -> float:
    """Round away float noise such as 1 - 0.1 = 0.9000000000000001."""
    return round(value, 10)


def _batch_files(folder: Path) -> list[Path]:
    """List the batch files (CSV or Parquet, not hidden) in a folder, sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"landing folder `{folder}` does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix in _BATCH_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise ValueError(f"landing folder `{folder}`: no .csv or .parquet batch files")
    return files


def _read_batch(path: Path) -> pd.DataFrame:
    """Read one CSV or Parquet batch file."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"batch `{path.name}`: unsupported file type; use .csv or .parquet")


if __name__ == "__main__":
    sys.exit(main())
