"""Inferring a Great Expectations suite from a sample of good data: how any schema gets one (GX 1.x has no profiler).

Each expectation's `meta.check` is one of `CHECK_CATEGORIES`; `validation.py` runs the suite, turns
each category into one verdict and saves the suite into the `gx/` project. Never imports Dagster;
Great Expectations is imported inside functions (it takes seconds).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

    from ml_assets.lib.config import Params

CHECK_CATEGORIES = (
    "columns_and_dtypes",
    "null_limits",
    "numeric_ranges",
    "categorical_domains",
    "target",
    "row_count",
    "duplicates",
)
"""What an expectation's `meta.check` may be: each category is one blocking Dagster check of a batch."""
INFERRED_CHECKS = frozenset({"columns_and_dtypes", "numeric_ranges", "categorical_domains"})
"""Categories whose expectations come from the data itself: not judged on the batch they came from."""
_SIZES = ("8", "16", "32", "64")
NUMERIC_TYPE_LIST = (  # type names GX compares with a column's dtype (object columns: per value)
    *(f"{kind}{size}" for kind in ("int", "uint") for size in _SIZES),
    *("float16", "float32", "float64"),
    *(f"{kind}{size}Dtype" for kind in ("Int", "UInt") for size in _SIZES),
    *("Float32Dtype", "Float64Dtype", "int", "float"),
)
_TYPE_LISTS = {"numeric": NUMERIC_TYPE_LIST, "string": ("str", "StringDtype"), "boolean": ("bool", "BooleanDtype")}


@dataclass(frozen=True)
class InferenceSpec:
    """What suite inference needs from params.yaml (`data` and `validation`)."""

    target: str
    id_columns: Sequence[str]
    feature_types: Mapping[str, str]
    min_rows: int
    max_null_fraction: float
    max_duplicate_fraction: float
    min_classes: int

    @classmethod
    def from_params(cls, params: Params) -> InferenceSpec:
        """The spec in params.yaml."""
        d, v = params.data, params.validation
        limits = (v.min_rows, v.max_null_fraction, v.max_duplicate_fraction, v.min_classes)
        return cls(d.target, d.id_columns, d.feature_types, *limits)


def infer_suite(df: pd.DataFrame, *, name: str, spec: InferenceSpec) -> ExpectationSuite:
    """Build a suite (not saved) from a sample of good data: how any schema gets one.

    Numeric columns (or those `spec.feature_types` forces to numeric) get ranges widened by half
    their span; other features and the target a domain of their observed values. Raises ValueError
    when params.yaml names a missing column, a column cannot have the kind asked, or a limit is off.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    ex: Any = gx.expectations

    df, target, ids = normalize_frame(df), spec.target, list(dict.fromkeys(spec.id_columns))
    families = {str(c): _dtype_family(df[c]) for c in df.columns}
    kinds = _column_kinds(families, spec)
    found: list[Any] = []

    def add(check: str, expectation: Any, **kwargs: Any) -> None:
        found.append(expectation(**kwargs, meta={"check": check}))

    for c, kind in kinds.items():
        add("columns_and_dtypes", ex.ExpectColumnToExist, column=c)
        add("columns_and_dtypes", ex.ExpectColumnValuesToBeInTypeList, column=c, type_list=[*_TYPE_LISTS[families[c]]])
        mostly = 1.0 if kind in ("id", "target") else round(1.0 - spec.max_null_fraction, 10)
        add("null_limits", ex.ExpectColumnValuesToNotBeNull, column=c, mostly=mostly)
        bounds = _widened_range(df[c]) if kind == "numeric" else None
        if bounds is not None:
            add("numeric_ranges", ex.ExpectColumnValuesToBeBetween, column=c, min_value=bounds[0], max_value=bounds[1])
        if kind in ("categorical", "target"):
            add("categorical_domains", ex.ExpectColumnValuesToBeInSet, column=c, value_set=_observed_values(df[c]))
    add("target", ex.ExpectColumnToExist, column=target)
    add("target", ex.ExpectColumnUniqueValueCountToBeBetween, column=target, min_value=spec.min_classes, max_value=None)
    add("row_count", ex.ExpectTableRowCountToBeBetween, min_value=spec.min_rows, max_value=None)
    non_id, unique = [c for c in kinds if c not in ids], round(1.0 - spec.max_duplicate_fraction, 10)
    add("duplicates", ex.ExpectCompoundColumnsToBeUnique, column_list=non_id, mostly=unique)
    found.sort(key=lambda e: CHECK_CATEGORIES.index(e.meta["check"]))  # stable: columns keep their order
    meta = {"ml_assets": {"target": target, "id_columns": ids, "column_kinds": kinds, "inferred_from_rows": len(df)}}
    return ExpectationSuite(name=name, expectations=found, meta=meta)


def _column_kinds(families: dict[str, str], spec: InferenceSpec) -> dict[str, str]:
    """Each column's kind (id, target, numeric, categorical); raise ValueError naming a params.yaml misfit."""
    columns = list(families)
    for role, names in (("target", [spec.target]), ("id column", list(spec.id_columns))):
        for c in names:
            if c not in columns:
                raise ValueError(f"sample: {role} `{c}` is not a column ({', '.join(columns)}); fix params.yaml `data`")
    for c, kind in spec.feature_types.items():
        if kind not in ("numeric", "categorical") or c not in columns or c == spec.target or c in spec.id_columns:
            raise ValueError(
                f"params.yaml `data.feature_types`: `{c}: {kind}` must name a feature, numeric or categorical"
            )
        if kind == "numeric" and families[c] != "numeric":
            raise ValueError(f"sample: column `{c}`: feature_types says numeric but its values are {families[c]}")
    for label in ("max_null_fraction", "max_duplicate_fraction"):
        if not 0.0 <= getattr(spec, label) < 1.0:
            raise ValueError(f"params.yaml `validation.{label}` is {getattr(spec, label)}; it must be in [0, 1)")
    numeric = {c: "numeric" if family == "numeric" else "categorical" for c, family in families.items()}
    return {
        c: "id" if c in spec.id_columns else "target" if c == spec.target else spec.feature_types.get(c) or numeric[c]
        for c in columns
    }


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy whose dtypes GX's `==` type checks understand (GX lacks categoricals and Arrow).

    Categoricals and Arrow or pandas 3 strings become object columns (checked per value); Arrow
    numerics become pandas nullable dtypes.
    """
    out = df.copy(deep=False)
    for column in df.columns:
        dtype = df[column].dtype
        if isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_bool_dtype(dtype):
            out[column] = df[column].astype("boolean")
        elif isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_numeric_dtype(dtype):
            out[column] = df[column].astype("Int64" if pd.api.types.is_integer_dtype(dtype) else "Float64")
        elif isinstance(dtype, pd.CategoricalDtype | pd.ArrowDtype | pd.StringDtype):
            out[column] = df[column].astype(object)
    return out


def _dtype_family(series: pd.Series) -> str:
    """The column's family: numeric, boolean or string, by dtype (object columns: by values)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    inferred = (
        "floating" if pd.api.types.is_numeric_dtype(series.dtype) else pd.api.types.infer_dtype(series, skipna=True)
    )
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "boolean" if inferred == "boolean" else "string"


def _widened_range(series: pd.Series) -> tuple[float, float] | None:
    """The observed [min, max] widened by half the span each side (not below 0 if min >= 0); None if all null."""
    values = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    lo, hi = low - (high - low) / 2.0, high + (high - low) / 2.0
    lo = max(lo, 0.0) if low >= 0 else lo
    if pd.api.types.is_integer_dtype(series.dtype) or bool(np.all(values == np.round(values))):
        return float(math.floor(lo)), float(math.ceil(hi))
    return math.floor(lo * 1e4) / 1e4, math.ceil(hi * 1e4) / 1e4


def _observed_values(series: pd.Series) -> list[Any]:
    """The distinct non-null values as plain JSON values, sorted stably."""
    return sorted(set(series.dropna().unique().tolist()), key=lambda v: (type(v).__name__, v))
