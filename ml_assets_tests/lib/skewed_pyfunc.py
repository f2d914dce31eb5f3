"""A deliberately different serving transform, as a hand-written pyfunc wrapper would introduce.

`log_skewed_copy` writes a copy of a scikit-learn model whose `sklearn` flavor is untouched (so a
reload of that flavor matches) but whose `python_function` flavor, the one `mlflow models serve`
runs, rescales one input column before predicting: training-serving skew that only the serving
path shows. MLflow imports this module by name (`loader_module`) when it loads the served model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

LOADER = "ml_assets_tests.lib.skewed_pyfunc"


class RescalingWrapper:
    """Serves `predict_proba` of a pipeline after multiplying one column by a factor."""

    def __init__(self, model: Any, *, column: str, factor: float):
        self.model, self.column, self.factor = model, column, factor

    def predict_proba(self, data: pd.DataFrame, params: dict | None = None) -> Any:
        data = data.copy()
        data[self.column] = data[self.column] * self.factor
        return self.model.predict_proba(data)

    predict = predict_proba


def _load_pyfunc(path: str) -> RescalingWrapper:
    """MLflow's loader hook: `path` is the model folder (or the pickle the flavor's `data` names)."""
    import cloudpickle
    from mlflow.models import Model

    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    conf = Model.load(str(folder / "MLmodel")).flavors["python_function"]
    with open(folder / conf["model_path"], "rb") as handle:
        model = cloudpickle.load(handle)
    return RescalingWrapper(model, column=conf["skew"]["column"], factor=float(conf["skew"]["factor"]))


def log_skewed_copy(tracking_uri: str, model: Any, *, example: pd.DataFrame, column: str, factor: float) -> str:
    """Logs `model` with an intact sklearn flavor and a pyfunc flavor that rescales `column`; returns its URI."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import Model, infer_signature

    from ml_assets.lib.tracking import pip_requirements

    mlflow.set_tracking_uri(tracking_uri)
    example = example.astype({c: "float64" for c in example.select_dtypes("integer").columns})
    with tempfile.TemporaryDirectory() as folder, mlflow.start_run() as run:
        path = Path(folder) / "model"
        mlflow.sklearn.save_model(
            model,
            str(path),
            serialization_format="cloudpickle",
            pyfunc_predict_fn="predict_proba",
            signature=infer_signature(example, model.predict_proba(example)),
            pip_requirements=pip_requirements(),
        )
        meta = Model.load(str(path / "MLmodel"))
        meta.flavors["python_function"].update(loader_module=LOADER, skew={"column": column, "factor": factor})
        meta.save(str(path / "MLmodel"))
        mlflow.log_artifacts(str(path), "model")
    return f"runs:/{run.info.run_id}/model"
