"""Feature engineering: column roles, a deterministic stratified split, and the preprocessing pipeline.

The preprocessing pipeline is fit on the training split only and travels inside every model, so
serving applies exactly the transformations training saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.util import hash_pandas_object

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

RESERVED_PREFIX = "_"  # columns such as `_batch` carry lineage and are never features


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns are numeric features, which are categorical, and which is the target."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str

    @property
    def features(self) -> tuple[str, ...]:
        """All feature columns, numeric first."""
        return self.numeric + self.categorical


@dataclass(frozen=True)
class DatasetSplit:
    """The three disjoint parts of the training snapshot."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        """Rows per part."""
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def infer_feature_spec(
    df: pd.DataFrame,
    *,
    target: str,
    id_columns: Sequence[str] = (),
    feature_types: Mapping[str, str] | None = None,
) -> FeatureSpec:
    """Decides each column's role: numbers are numeric, everything else categorical.

    Args:
        df: The training data.
        target: The label column.
        id_columns: Columns kept for lineage only.
        feature_types: Overrides, column -> "numeric" or "categorical".

    Returns:
        The feature spec; columns starting with `_` are skipped.

    Raises:
        ValueError: The target is missing or an override names an unknown column or type.
    """
    if target not in df.columns:
        raise ValueError(f"target column `{target}` is not in the data (columns: {list(df.columns)})")
    overrides = dict(feature_types or {})
    for column, kind in overrides.items():
        if column not in df.columns:
            raise ValueError(f"params.yaml `data.feature_types` names column `{column}`, which the data lacks")
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"params.yaml `data.feature_types.{column}` is `{kind}`; use numeric or categorical")
    skip = {target, *id_columns}
    numeric: list[str] = []
    categorical: list[str] = []
    for column in df.columns:
        if column in skip or column.startswith(RESERVED_PREFIX):
            continue
        kind = overrides.get(column) or ("numeric" if pd.api.types.is_numeric_dtype(df[column]) else "categorical")
        (numeric if kind == "numeric" else categorical).append(column)
    if not numeric and not categorical:
        raise ValueError("the data has no feature columns besides the target and id columns")
    return FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical), target=target)


def row_keys(df: pd.DataFrame, *, id_columns: Sequence[str] = (), seed: int) -> np.ndarray:
    """Hashes each row to a uint64 that depends only on its identity and the seed.

    Args:
        df: The rows.
        id_columns: Columns that identify a row; all columns when empty or absent.
        seed: Salts the hash, so another seed gives another split.

    Returns:
        One uint64 per row.
    """
    present = [c for c in id_columns if c in df.columns]
    frame = df[present] if present else df
    hash_key = f"{seed:016d}"[-16:]
    hashes = hash_pandas_object(frame, index=False, hash_key=hash_key)
    return np.asarray(hashes, dtype=np.uint64)


def split_dataset(
    df: pd.DataFrame,
    *,
    target: str,
    test_size: float,
    validation_size: float,
    seed: int,
    id_columns: Sequence[str] = (),
) -> DatasetSplit:
    """Splits rows into train, validation and test, stratified by the target.

    Within each class, rows are ordered by a seeded hash of their identity and the lowest
    `test_size` share goes to test, the next `validation_size` share to validation. The split is
    therefore deterministic, exactly stratified, and stable as data grows: an existing row only
    changes part when it sits on a class's boundary.

    Args:
        df: The training snapshot.
        target: The label column.
        test_size: Share of each class held out for the final test.
        validation_size: Share of each class used to pick the best candidate.
        seed: Salts the row hash.
        id_columns: Columns that identify a row (all columns when empty).

    Returns:
        The three parts, each in the snapshot's row order.
    """
    if not 0 < test_size < 1 or not 0 < validation_size < 1 - test_size:
        raise ValueError(f"test_size={test_size} and validation_size={validation_size} must be in (0, 1), sum < 1")
    keys = row_keys(df, id_columns=id_columns, seed=seed)
    part = np.zeros(len(df), dtype=np.int8)  # 0 train, 1 validation, 2 test
    labels = df[target].to_numpy()
    for label in pd.unique(labels):
        positions = np.flatnonzero(labels == label)
        ordered = positions[np.argsort(keys[positions], kind="stable")]
        n_test = round(len(ordered) * test_size)
        n_validation = round(len(ordered) * validation_size)
        part[ordered[:n_test]] = 2
        part[ordered[n_test : n_test + n_validation]] = 1
    return DatasetSplit(
        train=df.loc[part == 0].reset_index(drop=True),
        validation=df.loc[part == 1].reset_index(drop=True),
        test=df.loc[part == 2].reset_index(drop=True),
    )


def as_text(frame: Any) -> Any:
    """Casts categorical columns to text, keeping missing values missing (used inside the pipeline).

    NumPy-typed columns are cast at once (`astype(str)`, then the missing cells put back): the
    same text as `str(value)` per cell, seven times faster on a million rows. Extension-typed
    columns (nullable integers, categoricals) keep the per-cell cast, whose text differs.
    """
    frame = pd.DataFrame(frame)
    text = frame.astype(str).where(frame.notna(), np.nan)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.api.extensions.ExtensionDtype):
            text[column] = frame[[column]].map(lambda value: np.nan if pd.isna(value) else str(value))[column]
    return text


def build_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """Builds the (unfitted) preprocessing: impute and scale numbers, impute and one-hot categories.

    Args:
        spec: The feature spec.

    Returns:
        A scikit-learn ColumnTransformer that outputs a dense float matrix.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    categorical = make_pipeline(
        FunctionTransformer(as_text, feature_names_out="one-to-one"),
        SimpleImputer(strategy="constant", fill_value="__missing__", keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [("numeric", numeric, list(spec.numeric)), ("categorical", categorical, list(spec.categorical))],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def fit_preprocessor(train: pd.DataFrame, spec: FeatureSpec) -> ColumnTransformer:
    """Fits the preprocessing on the training split only.

    Args:
        train: The training split.
        spec: The feature spec.

    Returns:
        The fitted ColumnTransformer.
    """
    preprocessor = build_preprocessor(spec)
    preprocessor.fit(train[list(spec.features)])
    return preprocessor


def count_non_finite(matrix: np.ndarray) -> int:
    """Returns how many cells of a transformed matrix are NaN or infinite."""
    return int(np.size(matrix) - np.count_nonzero(np.isfinite(np.asarray(matrix, dtype=float))))


@dataclass(frozen=True)
class LeakageReport:
    """What the leakage check found."""

    target_in_features: bool
    overlapping_rows: int
    suspicious_features: dict[str, float]

    @property
    def leaks(self) -> bool:
        """True when any form of leakage was found."""
        return self.target_in_features or self.overlapping_rows > 0 or bool(self.suspicious_features)


def find_leakage(
    split: DatasetSplit,
    spec: FeatureSpec,
    *,
    id_columns: Sequence[str] = (),
    seed: int = 0,
    max_single_feature_auc: float = 0.99,
) -> LeakageReport:
    """Looks for target leakage.

    Leakage here is the label among the features, rows shared by train and test, or a numeric
    feature that alone separates the classes almost perfectly.

    Args:
        split: The three parts.
        spec: The feature spec.
        id_columns: Columns that identify a row.
        seed: Any seed (only used to hash rows; overlap does not depend on it).
        max_single_feature_auc: A single feature at or above this ROC AUC (or below 1 minus it)
            is reported as suspicious.

    Returns:
        The findings.
    """
    from sklearn.metrics import roc_auc_score

    train_keys = set(row_keys(split.train, id_columns=id_columns, seed=seed).tolist())
    overlap = sum(
        int(k in train_keys)
        for part in (split.validation, split.test)
        for k in row_keys(part, id_columns=id_columns, seed=seed).tolist()
    )
    suspicious: dict[str, float] = {}
    y = pd.Series(split.train[spec.target])
    if y.nunique() == 2:
        positive = sorted(y.unique())[-1]
        for column in spec.numeric:
            values = pd.Series(split.train[column])
            mask = values.notna()
            if mask.sum() < 10 or y[mask].nunique() < 2:
                continue
            auc = float(roc_auc_score(y[mask] == positive, values[mask]))
            if max(auc, 1 - auc) >= max_single_feature_auc:
                suspicious[column] = round(auc, 4)
    return LeakageReport(
        target_in_features=spec.target in spec.features,
        overlapping_rows=overlap,
        suspicious_features=suspicious,
    )


@dataclass(frozen=True)
class TrainingData:
    """The split snapshot with its feature spec and the DVC versions it was cut from."""

    split: DatasetSplit
    spec: FeatureSpec
    snapshot_md5: str
    holdout_md5: str


def main(argv: Sequence[str] | None = None) -> int:
    """`dvc repro holdout` runs this: write the test split of the snapshot as the frozen holdout."""
    import argparse
    from pathlib import Path

    from ml_assets.lib.config import load_params

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--snapshot", type=Path, required=True)
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    split = split_dataset(
        pd.read_parquet(args.snapshot),
        target=params.data.target,
        test_size=params.split.test_size,
        validation_size=params.split.validation_size,
        seed=params.split.seed,
        id_columns=params.data.id_columns,
    )
    args.holdout.parent.mkdir(parents=True, exist_ok=True)
    split.test.to_parquet(args.holdout, index=False)
    print(f"wrote {len(split.test)} holdout rows to {args.holdout}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
