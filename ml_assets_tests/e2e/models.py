"""Tiny pyfunc models for the serving e2e test: a good one, a faulty one (raises on odd `a`), a different one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd


class Scorer(mlflow.pyfunc.PythonModel):
    """Two-class scores from a logistic of `weight * a + b`; `fail_on_odd` raises on rows with odd `a`."""

    def __init__(self, *, weight: float, fail_on_odd: bool = False) -> None:
        self.weight = weight
        self.fail_on_odd = fail_on_odd

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[list[float]]:
        if self.fail_on_odd and (model_input["a"] % 2 == 1).any():
            raise ValueError("injected fault: this version fails on rows with an odd `a`")
        scores = []
        for a, b in zip(model_input["a"], model_input["b"], strict=True):
            p = 1 / (1 + math.exp(-(self.weight * a + b)))
            scores.append([1 - p, p])
        return scores


def register_versions(tracking_uri: str, model_name: str) -> None:
    """Registers v1 (healthy), v2 (raises on odd `a`) and v3 (healthy, other weights) of `model_name`."""
    import sys

    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the model servers need not import the tests
    example = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, -0.5, 0.0]})
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # artifacts beside the store, never in the working directory (MLflow's default `./mlruns`)
    artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving", artifact_location=artifacts.as_uri()))
    for scorer in (Scorer(weight=0.3), Scorer(weight=0.3, fail_on_odd=True), Scorer(weight=-0.2)):
        signature = infer_signature(example, scorer.predict(None, example.assign(a=[2, 2, 2])))
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model",
                python_model=scorer,
                signature=signature,
                registered_model_name=model_name,
                pip_requirements=["mlflow"],
            )
