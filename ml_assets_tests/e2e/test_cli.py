"""`make run`'s command from a fresh project: demo data, the whole graph, a champion; the second run is a no-op."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml_assets_tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.long]


def test_run_makes_a_champion_then_changes_nothing(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["demo"].update(batches=2, rows_per_batch=600)  # smaller than the real demo, same code path
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(tmp_path / "remote"),
    }

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ml_assets.cli", "run"], cwd=root, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    first = run()
    assert "wrote 2 demo batches" in first
    assert "champion: models:/churn_classifier@champion = version 1" in first
    assert "roc_auc" in first and (root / "data" / "snapshot" / "training_snapshot.parquet").is_file()

    second = run()
    assert "demo batches" not in second and "batch " not in second  # nothing new landed, nothing ingested
    assert "= version 1" in second  # the same champion; no second version was registered

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    assert len(client.search_model_versions("name = 'churn_classifier'")) == 1
