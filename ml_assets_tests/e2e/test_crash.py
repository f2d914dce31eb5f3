"""`kill -9` of `make run` mid-validation and mid-registration: the next run repairs, nothing is lost or half-made."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ml_assets_tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.long]


def project_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["demo"].update(batches=2, rows_per_batch=600)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    return root, {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(tmp_path / "remote"),
    }


def run_until(root: Path, env: dict[str, str], moment: Callable[[dg.DagsterInstance], bool]) -> None:
    """Starts `make run`'s command and kills its whole process group with SIGKILL at `moment`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ml_assets.cli", "run"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        while process.poll() is None and time.monotonic() < deadline:
            if moment(instance):
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before the moment it was to be killed"


def materialized(asset: str) -> Callable[[dg.DagsterInstance], bool]:
    def seen(instance: dg.DagsterInstance) -> bool:
        return bool(instance.fetch_materializations(dg.AssetKey(asset), limit=1).records)

    return seen


def test_kill_9_mid_validation_and_mid_registration_loses_nothing(tmp_path: Path):
    from mlflow import MlflowClient

    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib import tracking

    root, env = project_env(tmp_path)
    run_until(root, env, materialized("landed_batch"))  # a batch is read, its checks have not finished
    run_until(root, env, materialized("model_evaluation"))  # the model is judged, registration is under way

    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli", "run"], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "champion: models:/churn_classifier@champion = version" in done.stdout

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        ledger = read_ledger(instance, BATCH_CHECKS)
        assert [(e.status, e.landed_rows) for e in ledger] == [("validated", 600), ("validated", 600)]
        runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert runs == []  # the killed runs were found dead and marked failed
    uri = env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'churn_classifier'")
    for version in versions:  # no version without its lineage
        assert {tracking.FINGERPRINT_TAG, "dvc.snapshot_md5", "dagster_run_id"} <= set(version.tags), version.version
    champion = tracking.alias_version(client, "churn_classifier", tracking.CHAMPION)
    assert champion is not None and len({v.tags[tracking.FINGERPRINT_TAG] for v in versions}) == len(versions)
    tracking.load_model(uri, f"models:/churn_classifier/{champion.version}")  # the alias points at a whole model
