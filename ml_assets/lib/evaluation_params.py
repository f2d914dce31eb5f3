"""The `evaluation` section of `params.yaml`: slices, explanations, the serving-skew sample, the model card.

Kept beside `config.py` (which holds every other section) so that each stays a file one can read
whole; `config.parse_params` builds `EvaluationParams` as it builds every section, with the values
`evaluation_fields` parses in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SliceSpec:
    """A configured slice of the holdout: a name and a `DataFrame.query` expression."""

    name: str
    query: str


@dataclass(frozen=True)
class ModelCardParams:
    """What the model card says about use, beyond what is measured."""

    intended_use: str = ""
    limitations: str = ""


@dataclass(frozen=True)
class EvaluationParams:
    """Slices, explanations, the serving-skew sample and the model card (see `ml_assets/lib/slices.py`).

    Attributes:
        slice_features: Categorical features whose values are slices; None slices every one.
        max_values_per_feature: A feature with more holdout values is sliced on its most frequent ones.
        min_slice_rows: Fewer holdout rows in a slice and it is reported as not judged.
        min_slice_class_rows: Fewer rows of any class in a slice and it is reported as not judged.
        slices: Configured slices, each a `DataFrame.query` expression over the holdout's columns.
        explanation_rows: Holdout rows scored per shuffle for the permutation importances (0 = none).
        explanation_repeats: Shuffles per feature.
        skew_rows: Holdout rows sent through MLflow's scoring path to compare with offline predictions.
        model_card: Intended use and limitations, written into every version's model card.
    """

    slice_features: tuple[str, ...] | None = None
    max_values_per_feature: int = 20
    min_slice_rows: int = 50
    min_slice_class_rows: int = 5
    slices: tuple[SliceSpec, ...] = ()
    explanation_rows: int = 500
    explanation_repeats: int = 5
    skew_rows: int = 200
    model_card: ModelCardParams = field(default_factory=ModelCardParams)

    def __post_init__(self) -> None:
        from ml_assets.lib.config import ParamsError

        counts = "max_values_per_feature", "min_slice_rows", "min_slice_class_rows", "explanation_repeats", "skew_rows"
        if any(not isinstance(getattr(self, k), int) or getattr(self, k) < 1 for k in counts):
            raise ParamsError(f"params.yaml: `evaluation.{'`, `'.join(counts)}` must be positive integers")
        if not isinstance(self.explanation_rows, int) or self.explanation_rows < 0:
            raise ParamsError("params.yaml: `evaluation.explanation_rows` must be a non-negative integer (0 = none)")


def check_slice_query(name: str, query: str) -> None:
    """Raises `ParamsError` unless `query` parses as a `DataFrame.query` expression without `@` locals.

    Column names are checked when the slice meets the holdout: on an empty frame pandas parses the
    expression first and only then looks names up, which tells a syntax error from an unknown column.
    """
    import pandas as pd
    from pandas.errors import UndefinedVariableError

    from ml_assets.lib.config import ParamsError

    where = f"params.yaml: `evaluation.slices` entry `{name}`"
    if "@" in re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "", query):
        raise ParamsError(f"{where}: `{query}` refers to a local variable (`@...`); use column names and literals")
    try:
        pd.DataFrame().query(query)
    except UndefinedVariableError:
        pass  # a column name
    except Exception as error:  # SyntaxError, NotImplementedError, ValueError: not an expression pandas evaluates
        raise ParamsError(
            f"{where}: query `{query}` is not a valid DataFrame.query expression ({type(error).__name__}: {error}); "
            "write it as for pandas, e.g. \"age >= 65 and region == 'north'\" (backticks around names with spaces)"
        ) from error


def evaluation_fields(section: Mapping[str, Any]) -> dict[str, Any]:
    """Parses the values of the `evaluation` section that are more than a number or a name.

    Args:
        section: The section as parsed from YAML.

    Returns:
        `slices`, `slice_features` and `model_card`, typed, to build `EvaluationParams` with.

    Raises:
        ParamsError: A slice or the model card is malformed (named in the message).
    """
    from ml_assets.lib.config import ParamsError

    slices: list[SliceSpec] = []
    for entry in section.get("slices") or []:
        if not isinstance(entry, Mapping) or set(entry) != {"name", "query"}:
            raise ParamsError(f"params.yaml: `evaluation.slices` entry `{entry}` must have exactly `name` and `query`")
        name, query = str(entry["name"]), str(entry["query"])
        if not name.strip() or "=" in name or any(s.name == name for s in slices) or not query.strip():
            raise ParamsError(
                f"params.yaml: `evaluation.slices` entry `{name}`: give a unique non-empty name without `=` "
                "(`feature=value` names the categorical slices) and a non-empty query"
            )
        check_slice_query(name, query)
        slices.append(SliceSpec(name, query))
    card, features = section.get("model_card") or {}, section.get("slice_features")
    if not isinstance(card, Mapping) or not set(card) <= {"intended_use", "limitations"}:
        raise ParamsError("params.yaml: `evaluation.model_card` takes `intended_use` and `limitations` (text)")
    return {
        "slices": tuple(slices),
        "slice_features": None if features is None else tuple(features),
        "model_card": ModelCardParams(**{k: str(v).strip() for k, v in card.items()}),
    }
