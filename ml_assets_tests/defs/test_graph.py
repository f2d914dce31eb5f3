"""The asset graph end to end with `dagster.materialize`, on small generated data and temporary stores."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_assets.lib import tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import failed_checks, ingest, materialized, train

MODEL = "churn_classifier"


def champion(project: Project):
    return tracking.alias_version(project.mlflow_client(), MODEL, tracking.CHAMPION)


def test_first_run_promotes_a_champion_with_lineage(trained: Project):
    version = champion(trained)
    assert version is not None and str(version.version) == "1"
    tags = version.tags
    lock = (trained.root / "dvc.lock").read_text()
    assert tags["dvc.snapshot_md5"] in lock and tags["dvc.holdout_md5"] in lock
    assert {"git_commit", "dagster_run_id", "params_hash", "code_version", tracking.FINGERPRINT_TAG} <= set(tags)
    assert tags["dagster_run_url"].endswith(f"/runs/{tags['dagster_run_id']}")  # MLflow links back to Dagster
    assert float(tags["test_roc_auc"]) > 0.75
    client = trained.mlflow_client()
    assert str(client.get_model_version_by_alias(MODEL, tracking.CHALLENGER).version) == "1"
    runs = client.search_runs([client.get_experiment_by_name("ml_assets").experiment_id])
    [parent] = [r for r in runs if "ml_assets.candidate" not in r.data.tags]  # the training run's, via dagster-mlflow
    assert sorted(r.data.tags["ml_assets.candidate"] for r in runs if r is not parent) == [
        "hist_gradient_boosting",
        "logistic_regression",
        "random_forest",
    ]
    # the snapshot and the holdout were pushed to the DVC remote
    pushed = {p.name for p in trained.dvc_remote.rglob("*") if p.is_file()}
    assert tags["dvc.snapshot_md5"][2:] in pushed and tags["dvc.holdout_md5"][2:] in pushed


@pytest.mark.parametrize(
    ("kind", "expected_check"),
    [
        ("null_required", "null_limits"),
        ("wrong_dtype", "columns_and_dtypes"),
        ("unknown_category", "categorical_domains"),
        ("one_class_target", "target"),
    ],
)
def test_bad_batch_is_kept_out_and_the_champion_stays(trained: Project, kind: str, expected_check: str):
    snapshot_before = (trained.root / "dvc.lock").read_text()
    [bad] = trained.land(batches=1, rows=400, seed=99, start="2027-01-01", bad=kind)
    result = ingest(trained, bad.name)[bad.name]
    failed = failed_checks(result)
    assert expected_check in failed, failed
    assert f"`{bad.name}`" in failed[expected_check] and "champion is unchanged" in failed[expected_check]
    assert "validated_batch" not in materialized(result)
    assert not (trained.root / "data" / "validated" / f"{bad.name}.parquet").exists()
    assert bad.exists()  # the bad file is never deleted: no row is lost

    retrain = train(trained)
    assert retrain.success
    assert (trained.root / "dvc.lock").read_text() == snapshot_before
    assert str(champion(trained).version) == "1"
    assert len(trained.mlflow_client().search_model_versions(f"name = '{MODEL}'")) == 1


def test_candidate_below_threshold_registers_and_promotes_nothing(project: Project):
    names = [p.name for p in project.land(batches=3, rows=400)]
    ingest(project, *names)
    project.edit_params(lambda raw: raw["gates"].update(min_roc_auc=0.99))
    result = train(project)
    failed = failed_checks(result)
    assert set(failed) == {"meets_min_roc_auc"}
    assert "below the minimum 0.9900" in failed["meets_min_roc_auc"]
    assert "registered_model" not in materialized(result) and "champion_model" not in materialized(result)
    assert champion(project) is None
    assert project.mlflow_client().search_registered_models() == []


def test_candidate_worse_than_champion_is_not_promoted(trained: Project):
    def cripple(raw):  # leave only weak features: every candidate gets clearly worse than the champion
        weak = {"customer_id", "age", "region", "churned"}
        raw["data"]["id_columns"] = [c for c in pd.read_csv(next(trained.landing.iterdir())).columns if c not in weak]
        raw["gates"].update(min_roc_auc=0.5, min_f1=0.0, baseline_margin=0.0, min_slice_roc_auc=0.0)

    trained.edit_params(cripple)
    result = train(trained)
    failed = failed_checks(result)
    assert set(failed) == {"no_regression_vs_champion", "no_slice_regression_vs_champion"}, failed
    assert "vs champion v1" in failed["no_regression_vs_champion"]
    assert "`champion` is unchanged" in failed["no_regression_vs_champion"]
    assert "champion_model" not in materialized(result)
    assert str(champion(trained).version) == "1"
    client = trained.mlflow_client()
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "2"  # kept for a person to judge
