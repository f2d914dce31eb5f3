"""Per-feature drift of a new batch against the champion's training data.

Pure logic: no Dagster, and `scipy` is imported inside the functions that use it so that
sensor modules importing this one stay cheap.

Each feature gets a hypothesis test and a Population Stability Index (PSI):

- numeric features: two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`) and PSI over
  quantile bins of the reference; non-finite values (NaN, +/-inf) are ignored;
- categorical features: chi-square test of homogeneity on the 2 x K contingency table
  (`scipy.stats.chi2_contingency`) and PSI over the union of categories; a missing value is a
  category of its own.

The p-values of all features are corrected for multiple testing ("bonferroni" or
"benjamini_hochberg"), because with 30 stationary features an uncorrected 5% test raises a
false alarm in most batches.

Decision rule: a feature drifts when its corrected p-value is below `alpha` AND its PSI is at
least `psi_threshold` (statistical and practical significance together, so a huge sample does
not flag a trivial shift and a tiny one does not flag noise); the dataset drifts when at least
one feature drifts. When the current (or reference) sample has fewer than `min_samples` rows the
report has `status="insufficient_data"`, `drifted=False` and no per-feature results: it does not
speak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol, cast

import numpy as np
import pandas as pd

DriftStatus = Literal["drift", "no_drift", "insufficient_data"]
FeatureKind = Literal["numeric", "categorical"]
Correction = Literal["bonferroni", "benjamini_hochberg"]

CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "benjamini_hochberg")
PSI_EPSILON = 1e-4
"""Proportion given to an empty bin so that PSI stays finite."""
MIN_EXPECTED_COUNT = 5.0
"""Categories whose expected count in either sample is below this are merged (chi-square)."""

KS_TEST = "kolmogorov_smirnov"
CHI2_TEST = "chi_square"


class _ScipyTestResult(Protocol):
    """What scipy's result bunches carry (their stubs make them opaque to type checkers)."""

    statistic: float
    pvalue: float


@dataclass(frozen=True)
class StatTest:
    """The outcome of one hypothesis test.

    Attributes:
        statistic: The test statistic.
        p_value: Its p-value.

    """

    statistic: float
    p_value: float


@dataclass(frozen=True)
class FeatureDrift:
    """The drift result of one feature.

    Attributes:
        feature: Column name.
        kind: "numeric" or "categorical".
        test: "kolmogorov_smirnov" or "chi_square".
        statistic: The test statistic (KS D, or chi-square).
        p_value: The raw p-value of the test.
        adjusted_p_value: The p-value after the multiple-testing correction.
        psi: Population Stability Index of current vs reference.
        drifted: Whether `adjusted_p_value < alpha` and `psi >= psi_threshold`.

    """

    feature: str
    kind: FeatureKind
    test: str
    statistic: float
    p_value: float
    adjusted_p_value: float
    psi: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """Drift of a current batch against a reference sample, over all features.

    Attributes:
        status: "drift", "no_drift", or "insufficient_data" (too few rows to decide).
        drifted: Whether at least one feature drifted; always False when data is insufficient.
        features: One result per feature, numeric first, in the order given; empty when the
            data is insufficient.
        n_reference: Rows in the reference sample.
        n_current: Rows in the current sample.
        alpha: Significance level applied to the corrected p-values.
        psi_threshold: Minimum PSI for a feature to count as drifted.
        correction: The multiple-testing correction used.
        min_samples: Minimum rows needed in each sample to decide.

    """

    status: DriftStatus
    drifted: bool
    features: tuple[FeatureDrift, ...]
    n_reference: int
    n_current: int
    alpha: float
    psi_threshold: float
    correction: str
    min_samples: int = 0

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features that drifted, in report order."""
        return tuple(f.feature for f in self.features if f.drifted)

    def summary(self) -> str:
        """Return a one-line, human-readable summary naming the drifted features.

        Returns:
            For example "drift in 2 of 10 features: tenure (psi 0.41, adj. p 3.1e-12), plan
            (psi 0.25, adj. p 0.0004)".

        """
        if self.status == "insufficient_data":
            return (
                f"insufficient data: {self.n_current} current and {self.n_reference} "
                f"reference rows, need at least {self.min_samples} of each"
            )
        n = len(self.features)
        rule = f"adj. p < {self.alpha:g} ({self.correction}) and psi >= {self.psi_threshold:g}"
        if not self.drifted:
            return f"no drift in {n} features ({rule}; {self.n_current} current rows)"
        named = ", ".join(
            f"{f.feature} (psi {f.psi:.2f}, adj. p {f.adjusted_p_value:.2g})" for f in self.features if f.drifted
        )
        return f"drift in {len(self.drifted_features)} of {n} features: {named}"

    def to_records(self) -> list[dict[str, Any]]:
        """Return one plain dict per feature, ready for a table or a DataFrame.

        Returns:
            The fields of each `FeatureDrift`, as a list of dicts.

        """
        return [asdict(f) for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        """Return the whole report as JSON-ready data (the inverse of `from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """Rebuild a report from `to_dict` output (e.g. read back from Dagster metadata).

        Args:
            data: The dict `to_dict` returned.

        Returns:
            The report.

        """
        fields = dict(data)
        fields["features"] = tuple(FeatureDrift(**f) for f in fields.get("features", ()))
        return cls(**fields)


def population_stability_index(reference: np.ndarray, current: np.ndarray, *, bins: int = 10) -> float:
    """Return the PSI of a numeric feature over quantile bins of the reference.

    Bin edges are the reference's `i / bins` quantiles, de-duplicated so that ties and
    constant columns give fewer, wider bins; bins are right-closed and the first and last are
    open-ended, so every current value falls in a bin. When the lowest edge equals the
    reference minimum (a point mass there, e.g. a constant column), values below the reference
    range get a bin of their own, so a shift in either direction is seen. Empty bins get a
    proportion of `PSI_EPSILON`. Non-finite values are ignored.

    Args:
        reference: Reference values (the champion's training data).
        current: Current values (the new batch).
        bins: Number of quantile bins (at least 2).

    Returns:
        PSI = sum((c - r) * ln(c / r)) over bins; 0 for identical distributions. Rule of thumb:
        < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.

    Raises:
        ValueError: `bins` < 2, or a sample has no finite values.

    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    ref = _finite(reference, name="reference")
    cur = _finite(current, name="current")
    inner = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    if inner[0] <= ref.min():
        inner = np.concatenate(([np.nextafter(ref.min(), -np.inf)], inner))
    # searchsorted(side="left") gives i with inner[i-1] < x <= inner[i]: right-closed bins.
    n_bins = inner.size + 1
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="left"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(inner, cur, side="left"), minlength=n_bins)
    return _psi_from_counts(ref_counts, cur_counts)


def categorical_psi(
    reference: pd.Series | np.ndarray | Sequence[Any],
    current: pd.Series | np.ndarray | Sequence[Any],
) -> float:
    """Return the PSI of a categorical feature over the union of categories.

    A missing value (None/NaN) is a category of its own; a category seen in only one sample
    gets a proportion of `PSI_EPSILON` in the other.

    Args:
        reference: Reference values (the champion's training data).
        current: Current values (the new batch).

    Returns:
        PSI = sum((c - r) * ln(c / r)) over categories; 0 for identical mixes.

    Raises:
        ValueError: A sample is empty.

    """
    ref_counts, cur_counts = _category_counts(reference, current)
    return _psi_from_counts(ref_counts, cur_counts)


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return Bonferroni-adjusted p-values, min(1, p * m).

    Args:
        p_values: Raw p-values of m tests.

    Returns:
        The adjusted p-values, in the input order.

    """
    p = _p_array(p_values)
    return np.minimum(p * p.size, 1.0)


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return Benjamini-Hochberg (false discovery rate) adjusted p-values.

    The adjusted value of the i-th smallest of m p-values is min over j >= i of
    p_(j) * m / j, capped at 1 (the step-up procedure; same as R's `p.adjust(p, "BH")`).

    Args:
        p_values: Raw p-values of m tests.

    Returns:
        The adjusted p-values, in the input order.

    """
    p = _p_array(p_values)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped_up = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped_up, 1.0)
    return adjusted


def adjust_p_values(p_values: Sequence[float] | np.ndarray, *, correction: str) -> np.ndarray:
    """Apply a multiple-testing correction.

    Args:
        p_values: Raw p-values.
        correction: "bonferroni" or "benjamini_hochberg".

    Returns:
        The adjusted p-values, in the input order.

    Raises:
        ValueError: Unknown correction.

    """
    if correction == "bonferroni":
        return bonferroni(p_values)
    if correction == "benjamini_hochberg":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")


def ks_test(reference: np.ndarray, current: np.ndarray) -> StatTest:
    """Run the two-sample Kolmogorov-Smirnov test, ignoring non-finite values.

    Args:
        reference: Reference values.
        current: Current values.

    Returns:
        The KS statistic D and its p-value.

    Raises:
        ValueError: A sample has no finite values.

    """
    from scipy.stats import ks_2samp

    result = ks_2samp(_finite(reference, name="reference"), _finite(current, name="current"))
    return _stat_test(result)


def chi_square_test(
    reference: pd.Series | np.ndarray | Sequence[Any],
    current: pd.Series | np.ndarray | Sequence[Any],
) -> StatTest:
    """Run a chi-square test of homogeneity of the category mix of two samples.

    Chose merging over a Jensen-Shannon fallback, so every feature keeps a p-value that the
    multiple-testing correction can use: categories whose expected count in either sample is
    below `MIN_EXPECTED_COUNT` are pooled into one "other" column (and that column, if still
    too small, into the smallest remaining one). Missing values are a category. If a single
    column remains (one category in both samples) the mixes are identical: statistic 0,
    p-value 1. Yates' continuity correction applies when the table is 2 x 2 (scipy default).

    Args:
        reference: Reference values.
        current: Current values.

    Returns:
        The chi-square statistic and its p-value.

    Raises:
        ValueError: A sample is empty.

    """
    from scipy.stats import chi2_contingency

    ref_counts, cur_counts = _category_counts(reference, current)
    table = _merge_sparse_categories(np.vstack([ref_counts, cur_counts]).astype(float))
    if table.shape[1] < 2:
        return StatTest(statistic=0.0, p_value=1.0)
    result = chi2_contingency(table)
    return _stat_test(result)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    alpha: float,
    psi_threshold: float,
    min_samples: int,
    correction: str = "benjamini_hochberg",
    bins: int = 10,
) -> DriftReport:
    """Compare every listed feature of `current` with `reference`.

    See the module docstring for the decision rule.

    Args:
        reference: The champion's training data.
        current: The new batch.
        numeric: Numeric feature columns (KS test, quantile-bin PSI).
        categorical: Categorical feature columns (chi-square test, category PSI).
        alpha: Significance level for the corrected p-values, in (0, 1).
        psi_threshold: Minimum PSI for a feature to drift (e.g. 0.2), >= 0.
        min_samples: Minimum rows in each sample; below it the report is "insufficient_data".
        correction: "bonferroni" or "benjamini_hochberg", applied across all features.
        bins: Quantile bins for numeric PSI.

    Returns:
        The drift report.

    Raises:
        ValueError: A parameter is out of range, a feature is listed twice or missing from a
            frame, a numeric feature is not numeric, or a feature has no usable values.

    """
    numeric, categorical = list(numeric), list(categorical)
    _check_options(
        numeric=numeric,
        categorical=categorical,
        alpha=alpha,
        psi_threshold=psi_threshold,
        min_samples=min_samples,
        correction=correction,
        bins=bins,
    )
    for name, frame in (("reference", reference), ("current", current)):
        repeated = sorted({c for c in frame.columns[frame.columns.duplicated()]})
        if repeated:
            raise ValueError(
                f"column(s) {repeated} appear more than once in the {name} data; rename or drop the duplicates"
            )
        missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"column(s) {missing} missing from the {name} data; "
                "pass the same feature columns in both frames or drop them from "
                "numeric=/categorical="
            )
    for column in numeric:
        for name, frame in (("reference", reference), ("current", current)):
            dtype = _column(frame, column).dtype
            if not pd.api.types.is_numeric_dtype(dtype):
                raise ValueError(
                    f"numeric feature {column!r} has dtype {dtype} in the "
                    f"{name} data; list it under categorical= or cast it to a number"
                )

    common = {
        "n_reference": len(reference),
        "n_current": len(current),
        "alpha": alpha,
        "psi_threshold": psi_threshold,
        "correction": correction,
        "min_samples": min_samples,
    }
    if len(current) < min_samples or len(reference) < min_samples:
        return DriftReport(status="insufficient_data", drifted=False, features=(), **common)

    unadjusted: list[FeatureDrift] = []
    for column in numeric:
        ref = _column(reference, column).to_numpy(dtype=float, na_value=np.nan)
        cur = _column(current, column).to_numpy(dtype=float, na_value=np.nan)
        try:
            test = ks_test(ref, cur)
            psi = population_stability_index(ref, cur, bins=bins)
        except ValueError as error:
            raise ValueError(f"numeric feature {column!r}: {error}") from error
        unadjusted.append(_feature(column, "numeric", KS_TEST, test, psi))
    for column in categorical:
        try:
            ref_values, cur_values = _column(reference, column), _column(current, column)
            test = chi_square_test(ref_values, cur_values)
            psi = categorical_psi(ref_values, cur_values)
        except ValueError as error:
            raise ValueError(f"categorical feature {column!r}: {error}") from error
        unadjusted.append(_feature(column, "categorical", CHI2_TEST, test, psi))

    adjusted = adjust_p_values([f.p_value for f in unadjusted], correction=correction)
    features = tuple(
        replace(
            f,
            adjusted_p_value=float(adj),
            drifted=bool(adj < alpha and f.psi >= psi_threshold),
        )
        for f, adj in zip(unadjusted, adjusted, strict=True)
    )
    drifted = any(f.drifted for f in features)
    return DriftReport(
        status="drift" if drifted else "no_drift",
        drifted=drifted,
        features=features,
        **common,
    )


def _stat_test(result: object) -> StatTest:
    typed = cast("_ScipyTestResult", result)
    return StatTest(statistic=float(typed.statistic), p_value=float(typed.pvalue))


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    column = frame[name]
    assert isinstance(column, pd.Series), "duplicate column names are rejected earlier"
    return column


def _feature(column: str, kind: FeatureKind, test_name: str, test: StatTest, psi: float) -> FeatureDrift:
    return FeatureDrift(
        feature=column,
        kind=kind,
        test=test_name,
        statistic=test.statistic,
        p_value=test.p_value,
        adjusted_p_value=test.p_value,
        psi=psi,
        drifted=False,
    )


def _check_options(
    *,
    numeric: list[str],
    categorical: list[str],
    alpha: float,
    psi_threshold: float,
    min_samples: int,
    correction: str,
    bins: int,
) -> None:
    if not numeric and not categorical:
        raise ValueError("no features to compare; pass columns in numeric= and/or categorical=")
    listed = numeric + categorical
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if twice:
        raise ValueError(
            f"feature(s) {twice} listed more than once across numeric= and categorical=; list each feature once"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}; e.g. 0.05")
    if not psi_threshold >= 0:
        raise ValueError(f"psi_threshold must be >= 0, got {psi_threshold!r}; e.g. 0.2")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")


def _finite(values: np.ndarray, *, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} values are not numeric ({error}); treat the feature as categorical") from error
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{name} sample has no finite values; drop the feature or fix the data")
    return array


def _category_counts(
    reference: pd.Series | np.ndarray | Sequence[Any],
    current: pd.Series | np.ndarray | Sequence[Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Count per category over the union of both samples; the last slot is "missing"."""
    ref, cur = _as_series(reference), _as_series(current)
    for name, series in (("reference", ref), ("current", cur)):
        if series.size == 0:
            raise ValueError(f"{name} sample is empty; categorical drift needs rows in both")
    ref_vc = ref.value_counts(dropna=True)
    cur_vc = cur.value_counts(dropna=True)
    categories = ref_vc.index.union(cur_vc.index, sort=False)
    ref_counts = ref_vc.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    cur_counts = cur_vc.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    return (
        np.append(ref_counts, int(ref.isna().sum())),
        np.append(cur_counts, int(cur.isna().sum())),
    )


def _as_series(values: pd.Series | np.ndarray | Sequence[Any]) -> pd.Series:
    if not isinstance(values, pd.Series):
        return pd.Series(values, dtype=object)
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Two categoricals with different categories do not union cleanly; plain values do.
        return values.astype(object)
    return values


def _merge_sparse_categories(table: np.ndarray) -> np.ndarray:
    """Pool columns of a 2 x K table whose expected counts fall below the minimum."""
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return table
    rows = table.sum(axis=1, keepdims=True)
    expected_min = (rows * table.sum(axis=0) / table.sum()).min(axis=0)
    sparse = expected_min < MIN_EXPECTED_COUNT
    if not sparse.any():
        return table
    dense = table[:, ~sparse]
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    pooled_expected = (rows * pooled.sum() / table.sum()).min()
    if pooled_expected < MIN_EXPECTED_COUNT and dense.shape[1] > 0:
        smallest = int(np.argmin(dense.sum(axis=0)))
        pooled = pooled + dense[:, [smallest]]
        dense = np.delete(dense, smallest, axis=1)
    return np.hstack([dense, pooled])


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    cur = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _p_array(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=float).ravel()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be finite and in [0, 1], got {p.tolist()}")
    return p


__all__ = [
    "CORRECTIONS",
    "DriftReport",
    "FeatureDrift",
    "StatTest",
    "adjust_p_values",
    "benjamini_hochberg",
    "bonferroni",
    "categorical_psi",
    "chi_square_test",
    "compute_drift",
    "ks_test",
    "population_stability_index",
]
