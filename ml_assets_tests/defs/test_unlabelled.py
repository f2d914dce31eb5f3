"""Scoring data without labels: judged without its target, scored and drift-checked, never trained on."""

from __future__ import annotations

import pandas as pd

from ml_assets.defs.sensors import landing_sensor, retrain_sensor
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_monitoring import output_metadata
from ml_assets_tests.defs.test_sensors import tick
from ml_assets_tests.graph import failed_checks, ingest, materialized, train


def test_an_unlabelled_batch_changes_no_model_until_its_labels_land(trained: Project):
    settled = tick(retrain_sensor, trained)
    [path] = trained.land(batches=1, rows=400, seed=61, start="2027-06-01")
    labelled = pd.read_csv(path)
    labelled.drop(columns=["churned"]).to_csv(path, index=False)  # scoring data: no target column
    result = ingest(trained, path.name)[path.name]
    assert result.success, failed_checks(result)
    [target] = [e for e in result.get_asset_check_evaluations() if e.check_name == "target"]
    assert target.passed and "no labels" in (target.description or "")
    assert {"validated_batch", "batch_drift", "predictions"} <= materialized(result)
    assert "live_performance" not in materialized(result)  # nothing to measure: not green
    assert (trained.root / "data" / "predictions" / f"{path.name}.v1.parquet").is_file()
    quiet = tick(retrain_sensor, trained, cursor=settled.cursor)
    assert quiet.run_requests == [] and quiet.skip_reason.skip_message.startswith("0 new validated rows")

    before = pd.read_parquet(trained.root / "data" / "snapshot" / "training_snapshot.parquet")
    retrained = train(trained)
    [ledger] = [e for e in retrained.get_asset_check_evaluations() if e.check_name == "rows_accounted_for"]
    assert ledger.passed and ledger.metadata["unlabelled"].value == 400, ledger.description
    after = pd.read_parquet(trained.root / "data" / "snapshot" / "training_snapshot.parquet")
    assert len(after) == len(before) and path.name not in set(after["_batch"])

    # the labels arrive later, as `<stem>.labels.csv`: the batch's next version carries them
    labels = trained.landing / f"{path.stem}.labels.csv"
    labelled[["customer_id", "churned"]].to_csv(labels, index=False)
    found = tick(landing_sensor, trained)
    assert [r.partition_key for r in found.run_requests if r.tags["ml_assets/trigger"] == "new_data"] == [path.name]
    relabelled = ingest(trained, path.name)[path.name]
    assert relabelled.success, failed_checks(relabelled)
    live = output_metadata(relabelled, "live_performance")
    assert live["labelled_rows"] == 400 and live["champion_score"] > 0.7
    with_labels = train(trained)
    [ledger] = [e for e in with_labels.get_asset_check_evaluations() if e.check_name == "rows_accounted_for"]
    assert ledger.passed and ledger.metadata["unlabelled"].value == 0
    assert path.name in set(pd.read_parquet(trained.root / "data" / "snapshot" / "training_snapshot.parquet")["_batch"])


def test_a_label_file_that_matches_no_row_is_rejected_with_a_message(project: Project):
    [path] = project.land(batches=1, rows=200)
    pd.read_csv(path).drop(columns=["churned"]).to_csv(path, index=False)
    ingest(project, path.name)
    pd.DataFrame({"customer_id": ["nobody"], "churned": [1]}).to_csv(
        project.landing / f"{path.stem}.labels.csv", index=False
    )
    result = ingest(project, path.name)[path.name]
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert f"{path.stem}.labels.csv` matches no row of the batch on ['customer_id']" in message
    assert (project.root / "data" / "validated" / f"{path.name}.parquet").is_file()  # the unlabelled version stays
