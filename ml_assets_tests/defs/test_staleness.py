"""A param edit changes the code version of exactly the assets that read it and their descendants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml_assets_tests.conftest import REPO

TRAINING_SIDE = [
    "dataset_split",
    "feature_pipeline",
    "candidate_logistic_regression",
    "candidate_random_forest",
    "candidate_hist_gradient_boosting",
    "trained_model",
    "model_evaluation",
    "registered_model",
    "champion_model",
]


def code_versions(root: Path) -> dict[str, str]:
    """Loads the code location in a fresh process with `root/params.yaml` and returns its code versions."""
    code = (
        "import json, ml_assets.definitions as d; g = d.defs.resolve_asset_graph(); "
        "print(json.dumps({k.to_user_string(): g.get(k).code_version for k in g.get_all_asset_keys()}))"
    )
    env = {**os.environ, "ML_ASSETS_ROOT": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def with_params(tmp_path: Path, change) -> Path:
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    change(raw)
    root = tmp_path / "changed"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def baseline() -> dict[str, str]:
    return code_versions(REPO)


@pytest.mark.parametrize(
    ("change", "stale"),
    [
        (lambda r: r["split"].update(seed=1), TRAINING_SIDE),
        (
            lambda r: r["training"]["candidates"]["random_forest"]["params"].update(n_estimators=50),
            ["candidate_random_forest", "trained_model", "model_evaluation", "registered_model", "champion_model"],
        ),
        (lambda r: r["training"].update(selection_metric="f1"), TRAINING_SIDE[2:]),  # it ranks inside each search
        (lambda r: r["training"]["search"].update(factor=2), TRAINING_SIDE[2:]),
        (
            lambda r: r["training"]["candidates"]["logistic_regression"]["search"].update(C=[1.0]),
            ["candidate_logistic_regression", *TRAINING_SIDE[5:]],
        ),
        (lambda r: r["gates"].update(bootstrap_samples=100), TRAINING_SIDE[6:]),
        (lambda r: r["drift"].update(alpha=0.01), ["batch_drift"]),
        (lambda r: r["gates"].update(min_f1=0.1), []),  # a threshold only changes a check's verdict
    ],
    ids=[
        "split",
        "one_candidate",
        "selection_metric",
        "search_schedule",
        "search_space",
        "bootstrap",
        "drift",
        "gate_threshold",
    ],
)
def test_param_edit_makes_exactly_its_descendants_stale(tmp_path: Path, baseline: dict[str, str], change, stale):
    after = code_versions(with_params(tmp_path, change))
    changed = sorted(k for k in baseline if baseline[k] != after[k])
    assert changed == sorted(stale)
