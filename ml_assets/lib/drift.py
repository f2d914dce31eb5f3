"""Per-feature drift of a new batch against the champion's training data.

Numeric features get a two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`, non-finite
values ignored), categorical ones a chi-square test of homogeneity (`scipy.stats.chi2_contingency`,
missing is a category); each also gets a Population Stability Index (PSI). The p-values of all
features are corrected for multiple testing (Bonferroni, or Benjamini-Hochberg by
`scipy.stats.false_discovery_control`): with 30 stationary features an uncorrected 5% test alarms
in most batches. A feature drifts when its corrected p-value is below `alpha` AND its PSI reaches
`psi_threshold` (significant and large); the dataset drifts when one feature does. With fewer than
`min_samples` rows in either sample the report is `insufficient_data`, never drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

DriftStatus = Literal["drift", "no_drift", "insufficient_data"]
CORRECTIONS = ("bonferroni", "benjamini_hochberg")
PSI_EPSILON = 1e-4
"""Proportion given to an empty bin so that PSI stays finite."""
MIN_EXPECTED_COUNT = 5.0
"""Categories whose expected count in either sample is below this are merged (chi-square)."""


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
    kind: str
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
        """Return a one-line summary, e.g. "drift in 1 of 9 features: tenure (psi 0.41, adj. p 3.1e-12)"."""
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
            f"{f.feature} (psi {f.psi:.2f}, adj. p {format_p_value(f.adjusted_p_value)})"
            for f in self.features
            if f.drifted
        )
        return f"drift in {len(self.drifted_features)} of {n} features: {named}"

    def to_records(self) -> list[dict[str, Any]]:
        """Return one plain dict per feature (the fields of `FeatureDrift`)."""
        return [asdict(f) for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        """Return the whole report as JSON-ready data (the inverse of `from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """Rebuild a report from `to_dict` output (e.g. read back from Dagster metadata)."""
        return cls(**{**data, "features": tuple(FeatureDrift(**f) for f in data.get("features", ()))})


def format_p_value(p: float) -> str:
    """A p-value with 2 significant digits ("0.43", "0.00043", "9.1e-33"): summary and tables use it."""
    return f"{p:.2g}"


def population_stability_index(reference: np.ndarray, current: np.ndarray, *, bins: int = 10) -> float:
    """PSI = sum((c - r) * ln(c / r)) over quantile bins of the reference (scipy has no PSI).

    Bin edges are the reference's `i / bins` quantiles, de-duplicated (ties give fewer, wider
    bins); bins are right-closed, the outer ones open-ended, and a point mass at the reference
    minimum gets a bin below it, so a shift either way is seen. Empty bins get `PSI_EPSILON`;
    non-finite values are ignored. Rule of thumb: < 0.1 stable, > 0.2 a significant shift.
    """
    ref, cur = _finite(reference, name="reference"), _finite(current, name="current")
    inner = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    if inner[0] <= ref.min():
        inner = np.concatenate(([np.nextafter(ref.min(), -np.inf)], inner))
    n_bins = inner.size + 1  # searchsorted(side="left"): inner[i-1] < x <= inner[i]
    counts = [np.bincount(np.searchsorted(inner, x, side="left"), minlength=n_bins) for x in (ref, cur)]
    return _psi_from_counts(*counts)


def categorical_psi(reference: Sequence[Any] | pd.Series, current: Sequence[Any] | pd.Series) -> float:
    """The PSI over the union of categories (missing is one); an unseen category gets `PSI_EPSILON`."""
    return _psi_from_counts(*_category_counts(reference, current))


def adjust_p_values(p_values: Sequence[float] | np.ndarray, *, correction: str) -> np.ndarray:
    """The p-values of m tests corrected: "bonferroni" (min(1, p * m)) or "benjamini_hochberg" (scipy)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=float)
    if correction == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    return false_discovery_control(p, method="bh") if p.size else p


def chi_square_test(reference: Sequence[Any] | pd.Series, current: Sequence[Any] | pd.Series) -> tuple[float, float]:
    """Chi-square test of homogeneity of two samples' category mix (`scipy.stats.chi2_contingency`).

    scipy lacks the pooling: categories whose expected count in either sample is below
    `MIN_EXPECTED_COUNT` are pooled into one column (and that column, if still too small, into the
    smallest remaining one), so every feature keeps a p-value. Missing values are a category. A
    single remaining column means identical mixes: statistic 0, p-value 1.

    Returns:
        The chi-square statistic and its p-value.
    """
    from scipy.stats import chi2_contingency

    table = np.vstack(_category_counts(reference, current)).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] >= 2:
        rows = table.sum(axis=1, keepdims=True)
        sparse = (rows * table.sum(axis=0) / table.sum()).min(axis=0) < MIN_EXPECTED_COUNT
        if sparse.any():
            dense, pooled = table[:, ~sparse], table[:, sparse].sum(axis=1, keepdims=True)
            if (rows * pooled.sum() / table.sum()).min() < MIN_EXPECTED_COUNT and dense.shape[1] > 0:
                smallest = int(np.argmin(dense.sum(axis=0)))
                pooled, dense = pooled + dense[:, [smallest]], np.delete(dense, smallest, axis=1)
            table = np.hstack([dense, pooled])
    if table.shape[1] < 2:
        return 0.0, 1.0
    result: Any = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


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
    """Compare every listed feature of `current` with `reference` (rule: see the module docstring).

    Args:
        reference: The champion's training data.
        current: The new batch.
        numeric: Numeric feature columns (KS test, quantile-bin PSI).
        categorical: Categorical feature columns (chi-square test, category PSI).
        alpha: Significance level for the corrected p-values, in (0, 1).
        psi_threshold: Minimum PSI for a feature to drift (e.g. 0.2), >= 0.
        min_samples: Minimum rows in each sample; below it the report is "insufficient_data".
        correction: "bonferroni" or "benjamini_hochberg", applied across all features.
        bins: Quantile bins for numeric PSI, >= 2.

    Returns:
        The drift report.

    Raises:
        ValueError: A parameter (params.yaml `drift`) is out of range, a feature is listed twice,
            missing from a frame, not numeric where it must be, or has no usable values.
    """
    from scipy.stats import ks_2samp

    _check_options(list(numeric) + list(categorical), alpha, psi_threshold, min_samples, correction, bins)
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
        wrong = [c for c in numeric if c in frame.columns and not pd.api.types.is_numeric_dtype(frame[c].dtype)]
        if missing or wrong:
            raise ValueError(
                f"the {name} data: column(s) {missing} missing, {wrong} not numeric; "
                "pass the same feature columns in both frames, and list non-numbers under categorical="
            )
    common = (len(reference), len(current), alpha, psi_threshold, correction, min_samples)
    if len(current) < min_samples or len(reference) < min_samples:
        return DriftReport("insufficient_data", False, (), *common)
    rows: list[FeatureDrift] = []
    for column in numeric:
        ref, cur = (frame[column].to_numpy(dtype=float, na_value=np.nan) for frame in (reference, current))
        try:
            result: Any = ks_2samp(_finite(ref, name="reference"), _finite(cur, name="current"))
            psi = population_stability_index(ref, cur, bins=bins)
        except ValueError as error:
            raise ValueError(f"numeric feature {column!r}: {error}") from error
        stats = (float(result.statistic), float(result.pvalue), float(result.pvalue), psi)
        rows.append(FeatureDrift(column, "numeric", "kolmogorov_smirnov", *stats, drifted=False))
    for column in categorical:
        statistic, p_value = chi_square_test(reference[column], current[column])
        psi = categorical_psi(reference[column], current[column])
        rows.append(FeatureDrift(column, "categorical", "chi_square", statistic, p_value, p_value, psi, drifted=False))
    adjusted = adjust_p_values([f.p_value for f in rows], correction=correction)
    features = tuple(
        replace(f, adjusted_p_value=float(adj), drifted=bool(adj < alpha and f.psi >= psi_threshold))
        for f, adj in zip(rows, adjusted, strict=True)
    )
    drifted = any(f.drifted for f in features)
    return DriftReport("drift" if drifted else "no_drift", drifted, features, *common)


def _check_options(
    features: list[str], alpha: float, psi_threshold: float, min_samples: int, correction: str, bins: int
) -> None:
    """Raise ValueError naming the first drift option (params.yaml `drift`) out of range."""
    twice = sorted({c for c in features if features.count(c) > 1})
    problems = {
        "no features to compare; pass columns in numeric= and/or categorical=": not features,
        f"feature(s) {twice} listed more than once across numeric= and categorical=": bool(twice),
        f"alpha must be in (0, 1), got {alpha!r}": not 0 < alpha < 1,
        f"psi_threshold must be >= 0, got {psi_threshold!r}": not psi_threshold >= 0,
        f"min_samples must be an integer >= 1, got {min_samples!r}": not (
            isinstance(min_samples, int) and min_samples >= 1
        ),
        f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}": correction not in CORRECTIONS,
        f"bins must be an integer >= 2, got {bins!r}": not (isinstance(bins, int) and bins >= 2),
    }
    for message, bad in problems.items():
        if bad:
            raise ValueError(message)


def _finite(values: np.ndarray, *, name: str) -> np.ndarray:
    """The finite values; none at all is an error naming the sample."""
    array = np.asarray(values, dtype=float).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{name} sample has no finite values; drop the feature or fix the data")
    return array


def _category_counts(
    reference: Sequence[Any] | pd.Series, current: Sequence[Any] | pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category over the union of both samples; the last slot counts missing values."""
    ref, cur = (
        (v.astype(object) if isinstance(v.dtype, pd.CategoricalDtype) else v)  # categoricals union as values
        if isinstance(v, pd.Series)
        else pd.Series(v, dtype=object)
        for v in (reference, current)
    )
    ref_vc, cur_vc = ref.value_counts(dropna=True), cur.value_counts(dropna=True)
    categories = ref_vc.index.union(cur_vc.index, sort=False)
    return tuple(  # type: ignore[return-value]
        np.append(vc.reindex(categories, fill_value=0).to_numpy(dtype=np.int64), int(s.isna().sum()))
        for vc, s in ((ref_vc, ref), (cur_vc, cur))
    )


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    cur = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))
