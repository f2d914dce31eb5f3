"""Training-serving skew: the served model's answers on holdout rows against the offline predictions.

"Served" is MLflow's own scoring path, as `mlflow models serve` runs it: the registered version
loaded with `mlflow.pyfunc.load_model`, the rows serialized to the JSON a client sends
(`dataframe_split`, by MLflow's `convert_input_example_to_serving_input`), then parsed, checked
against the model's signature and predicted by `mlflow.pyfunc.scoring_server.invocations` (the
function behind the server's `/invocations` route), and the JSON response read back. No server
process is needed: the HTTP layer adds sockets, not transformations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SkewReport:
    """Served against offline predictions on the same rows.

    Attributes:
        rows_compared: Rows sent through the scoring path.
        rows_differing: Rows whose served output differs from the offline one in any column.
        max_abs_difference: The largest absolute difference of any output cell (0.0 when equal).
        output_columns: The output columns (one per class) that differ somewhere.
        example_rows: Up to ten differing rows, by id (or holdout position), with both outputs.
        cast_columns: Input columns the served model's signature types differently from the
            offline frame (`age` int64 -> double); listed only when outputs differ.
        explained_by_casts: Whether predicting offline on the frame cast to the signature's types
            reproduces the served answers (the cause is then the cast, e.g. a number used as a category).
        served_object: What the served model is, e.g. `Pipeline(preprocess: ColumnTransformer, ...)`.
        error: Why the scoring path gave no comparable answer (a 4xx, another output shape); None if it did.
    """

    rows_compared: int
    rows_differing: int = 0
    max_abs_difference: float = 0.0
    output_columns: tuple[str, ...] = ()
    example_rows: tuple[str, ...] = ()
    cast_columns: tuple[str, ...] = field(default_factory=tuple)
    explained_by_casts: bool = False
    served_object: str = ""
    error: str | None = None

    @property
    def matches(self) -> bool:
        """True when every served output equals the offline one exactly."""
        return self.error is None and self.rows_differing == 0

    def message(self, what: str) -> str:
        """One line for the check, naming `what` was served (e.g. "`churn_classifier` v3")."""
        if self.error is not None:
            return f"{what} through MLflow's scoring path: {self.error}"
        if self.matches:
            return (
                f"{what} served through MLflow's pyfunc scoring path (JSON `dataframe_split`) predicts exactly the "
                f"offline probabilities on {self.rows_compared} holdout rows"
            )
        if self.explained_by_casts:
            cause = (
                f"the cause: the served signature casts {', '.join(self.cast_columns)} and the model treats the cast "
                "values differently (a number used as a category?); declare the column's type or cast it in training"
            )
        else:
            cause = (
                "the request's types do not explain it: the served model computes something else than the evaluated one"
            )
        return (
            f"{what} served through MLflow's scoring path differs from the offline predictions on "
            f"{self.rows_differing} of {self.rows_compared} holdout rows, in output column(s) "
            f"{', '.join(f'`{c}`' for c in self.output_columns)} (max |difference| {self.max_abs_difference:.3g}); "
            f"{cause}. Rows: {'; '.join(self.example_rows[:5])}{'; ...' if len(self.example_rows) > 5 else ''}"
        )


def skew_sample(holdout: pd.DataFrame, *, features: Sequence[str], rows: int, seed: int) -> pd.DataFrame:
    """Holdout rows to compare: those with missing values first (up to a quarter), then a seeded draw.

    Missing values are where serialization most often changes an input (NaN, None, null).

    Args:
        holdout: The holdout rows.
        features: The model's input columns.
        rows: The most rows to take.
        seed: Seed of the draw.

    Returns:
        The rows, all columns, in holdout order.
    """
    if len(holdout) <= rows:
        return holdout
    incomplete = holdout.index[holdout.loc[:, list(features)].isna().any(axis=1)]
    rng = np.random.default_rng(seed)
    chosen = list(rng.permutation(incomplete)[: rows // 4])
    rest = holdout.index.difference(pd.Index(chosen))
    chosen += list(rng.permutation(rest)[: rows - len(chosen)])
    return holdout.loc[holdout.index.isin(chosen)]


def describe_model(model: Any) -> str:
    """A short name of a model object, e.g. `Pipeline(preprocess: ColumnTransformer, model: LogisticRegression)`."""
    steps = getattr(model, "steps", None)
    if steps:
        return f"{type(model).__name__}({', '.join(f'{n}: {type(s).__name__}' for n, s in steps)})"
    return type(model).__name__


def score_as_served(served: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Scores `rows` with a loaded pyfunc model exactly as MLflow's scoring server would.

    Args:
        served: A model from `mlflow.pyfunc.load_model`.
        rows: The input columns, as offline.

    Returns:
        The predictions read back from the server's JSON response, one row per input row.

    Raises:
        ValueError: The scoring path answered with an error status (its message included).
    """
    from mlflow.models import convert_input_example_to_serving_input
    from mlflow.pyfunc import scoring_server

    payload = convert_input_example_to_serving_input(rows)
    response = scoring_server.invocations(payload, "application/json", served, served.metadata.get_input_schema())
    if response.status != 200:
        raise ValueError(f"the scoring server answers HTTP {response.status}: {str(response.response)[:500]}")
    return pd.DataFrame(json.loads(response.response)["predictions"])


_SAME_TYPE = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer", "bool": "boolean"}
"""pandas dtype -> the MLflow signature type that keeps it as it is."""


def _schema_casts(served: Any, rows: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Column -> (offline dtype, signature type) for each input the signature types differently."""
    schema = served.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return {}
    casts = {}
    for spec in schema.inputs:
        declared = str(getattr(spec.type, "name", spec.type))
        if spec.name not in rows.columns:
            continue
        offline = str(rows[spec.name].dtype)
        kept = _SAME_TYPE.get(offline) == declared or (offline in ("object", "string", "str") and declared == "string")
        if not kept:
            casts[spec.name] = (offline, declared)
    return casts


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cell-wise exact equality, NaN equal to NaN."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def compare_served(
    served: Any,
    offline_model: Any,
    rows: pd.DataFrame,
    *,
    features: Sequence[str],
    classes: Sequence[Any],
    id_columns: Sequence[str] = (),
) -> SkewReport:
    """Compares the served model's answers with the offline model's `predict_proba`, exactly.

    Any difference fails: both sides run the same pickled pipeline on the same values, and the
    JSON round trip of a float is exact, so even a last-bit difference means a different computation.

    Args:
        served: The registered version loaded with `mlflow.pyfunc.load_model`.
        offline_model: The trained model as evaluated (its `predict_proba` is the reference).
        rows: Holdout rows (all columns; ids name the differing rows).
        features: The input columns, in training order.
        classes: The model's classes, naming the output columns.
        id_columns: Columns that identify a row in messages; the holdout position when absent.

    Returns:
        The comparison.
    """
    inputs = rows.loc[:, list(features)]
    described = _describe_served(served)
    offline = np.asarray(offline_model.predict_proba(inputs), dtype=float)
    try:
        answer = score_as_served(served, inputs)
    except Exception as error:  # a rejected request is a skew too: a client would get no answer
        text = str(getattr(error, "message", None) or error)
        reason = text.rsplit("Error:", 1)[-1] if "Error:" in text else text  # MLflow prefixes the whole frame
        message = " ".join(reason.split())[:500]
        return SkewReport(len(rows), served_object=described, error=f"{type(error).__name__}: {message}")
    served_values = answer.to_numpy()
    if served_values.shape != offline.shape or not np.issubdtype(served_values.dtype, np.number):
        return SkewReport(
            len(rows),
            served_object=described,
            error=(
                f"it returns {served_values.shape[1] if served_values.ndim == 2 else '?'} column(s) "
                f"({', '.join(map(str, answer.columns))}) for {len(answer)} rows, offline gives one probability per "
                f"class ({', '.join(map(str, classes))}) for {len(offline)} rows"
            ),
        )
    served_values = served_values.astype(float)
    different = ~_same(served_values, offline)
    differing_rows = np.flatnonzero(different.any(axis=1))
    if len(differing_rows) == 0:
        return SkewReport(len(rows), served_object=described)
    present = [c for c in id_columns if c in rows.columns]
    examples = []
    for position in differing_rows[:10]:
        who = ", ".join(f"{c}={rows.iloc[position][c]}" for c in present) or f"holdout row {rows.index[position]}"
        pairs = ", ".join(
            f"`{c}` {offline[position, k]:.4f} -> {served_values[position, k]:.4f}" for k, c in enumerate(classes)
        )
        examples.append(f"{who}: {pairs}")
    with np.errstate(invalid="ignore"):
        gap = float(np.nanmax(np.abs(served_values - offline)))
    casts = _schema_casts(served, inputs)
    numeric = {c: "float64" for c, (_, declared) in casts.items() if declared in ("double", "float")}
    explained = bool(numeric) and bool(
        _same(np.asarray(offline_model.predict_proba(inputs.astype(numeric)), dtype=float), served_values).all()
    )
    return SkewReport(
        rows_compared=len(rows),
        rows_differing=len(differing_rows),
        max_abs_difference=gap if np.isfinite(gap) else float("inf"),
        output_columns=tuple(str(c) for k, c in enumerate(classes) if different[:, k].any()),
        example_rows=tuple(examples),
        cast_columns=tuple(f"`{c}` {offline_type} -> {declared}" for c, (offline_type, declared) in casts.items()),
        explained_by_casts=explained,
        served_object=described,
    )


def _describe_served(served: Any) -> str:
    """The served object (a Pipeline for the sklearn flavor), else the pyfunc loader module that builds it."""
    try:
        return describe_model(served.get_raw_model())
    except Exception:  # a custom flavor without a raw model: name its loader, where the serving code lives
        flavor = served.metadata.flavors.get("python_function", {})
        return f"pyfunc built by `{flavor.get('loader_module', 'unknown')}`"


def load_served_model(tracking_uri: str, model_uri: str) -> Any:
    """Loads a registered version as `mlflow models serve` does (`mlflow.pyfunc.load_model`)."""
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri)
