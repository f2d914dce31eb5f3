"""DVC-pinned data versions: idempotent runs, truthful `dvc status`, and reproducible models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ml_assets import cli
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.graph import failed_checks, ingest, train


def metadata_of(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def mlflow_runs(project: Project) -> list:
    client = project.mlflow_client()
    return client.search_runs([client.get_experiment_by_name("ml_assets").experiment_id])


def test_unchanged_data_and_code_train_and_register_nothing(trained: Project):
    runs_before = {r.info.run_id for r in mlflow_runs(trained)}
    second = train(trained)
    assert second.success
    # nothing trained: the only new MLflow run is the Dagster run's own (dagster-mlflow's parent run), empty
    [parent] = [r for r in mlflow_runs(trained) if r.info.run_id not in runs_before]
    assert parent.data.tags["dagster_run_id"] == second.run_id and parent.data.tags["ml_assets.role"] == "dagster_run"
    assert not parent.data.metrics
    for name in ("logistic_regression", "random_forest", "hist_gradient_boosting"):
        assert metadata_of(second, f"candidate_{name}")["reused"] is True
    assert metadata_of(second, "registered_model")["newly_registered"] is False
    assert metadata_of(second, "champion_model")["promoted"] is False
    assert len(trained.mlflow_client().search_model_versions(f"name = '{MODEL}'")) == 1
    # and the Dagster event log agrees: the snapshot kept its data version (the DVC md5)
    first_md5, second_md5 = (
        r.asset_materialization.metadata["dvc_md5"].value
        for r in trained.instance.fetch_materializations(dg.AssetKey("training_snapshot"), limit=2).records
    )
    assert first_md5 == second_md5


def dvc_status(root: Path) -> str:
    dvc = Path(sys.executable).with_name("dvc")
    return subprocess.run([str(dvc), "status"], cwd=root, capture_output=True, text=True, check=True).stdout


def test_dvc_status_tells_the_truth(trained: Project):
    assert "up to date" in dvc_status(trained.root)
    [batch] = trained.land(batches=1, rows=300, seed=51, start="2027-06-01")
    ingest(trained, batch.name)
    assert "training_snapshot" in dvc_status(trained.root)  # a new validated batch: the snapshot is stale
    train(trained)
    assert "up to date" in dvc_status(trained.root)


def test_reproduce_the_first_version_after_the_data_changed(trained: Project, capsys: pytest.CaptureFixture):
    first = trained.mlflow_client().get_model_version(MODEL, "1")
    names = [p.name for p in trained.land(batches=2, rows=400, seed=61, start="2027-07-01")]
    ingest(trained, *names)
    result = train(trained)
    assert set(failed_checks(result)) <= {"no_regression_vs_champion", "no_slice_regression_vs_champion"}
    assert first.tags["dvc.snapshot_md5"] not in (trained.root / "dvc.lock").read_text()  # the data moved on

    assert cli.reproduce(trained.root, "1") == 0
    out = capsys.readouterr().out
    md5 = first.tags["dvc.snapshot_md5"]
    assert f"data {md5} (read back {md5})" in out and "metrics match exactly" in out

    # a fresh clone: no DVC cache, no data, only the DVC remote (and the MLflow server)
    shutil.rmtree(trained.root / ".dvc" / "cache")
    shutil.rmtree(trained.root / "data")
    assert cli.reproduce(trained.root, "1") == 0
    assert "metrics match exactly" in capsys.readouterr().out


def test_a_changed_candidate_retrains_alone_beside_the_reused_ones(trained: Project):
    first = {
        r.data.tags["ml_assets.candidate"]: r for r in mlflow_runs(trained) if "ml_assets.candidate" in r.data.tags
    }
    path = trained.root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    forest = raw["training"]["candidates"]["random_forest"]["params"]
    forest["n_estimators"] = (
        [n + 7 for n in forest["n_estimators"]]
        if isinstance(forest["n_estimators"], list)
        else forest["n_estimators"] + 7
    )
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    second = train(trained)

    assert second.success  # the leaderboard once failed here: a reused candidate brought its search time as a metric
    assert metadata_of(second, "candidate_random_forest")["reused"] is False
    for name in ("logistic_regression", "hist_gradient_boosting"):
        assert metadata_of(second, f"candidate_{name}")["reused"] is True
    records = metadata_of(second, "trained_model")["leaderboard"].records
    assert len({tuple(r.data) for r in records}) == 1 and "search_seconds" not in records[0].data
    reused = next(r.data for r in records if r.data["candidate"] == "logistic_regression")
    assert reused["roc_auc"] == round(first["logistic_regression"].data.metrics["roc_auc"], 4)
