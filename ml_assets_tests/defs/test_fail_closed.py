"""Fault injection on the real graph: what cannot be compared, asked or finished never moves the champion."""

from __future__ import annotations

import contextvars
import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.definitions import defs
from ml_assets.defs.sensors import landing_sensor
from ml_assets.lib import promotion, tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.defs.test_sensors import skipped, tick
from ml_assets_tests.graph import failed_checks, ingest, materialize, materialized, train


def aliases(project: Project) -> dict[str, str]:
    return tracking.read_aliases(project.mlflow_client(), MODEL)


def retrain_with_new_setup(project: Project) -> dg.ExecuteInProcessResult:
    """A params change that trains new candidates (new fingerprints) of about the same quality."""

    def nudge(raw):
        candidates = raw["training"]["candidates"]
        candidates["logistic_regression"]["params"]["C"] = 0.9
        candidates["random_forest"]["params"]["n_estimators"] += 1
        candidates["hist_gradient_boosting"]["params"]["max_iter"] += 1

    project.edit_params(nudge)
    return train(project)


def install_champion_that_cannot_score(project: Project) -> str:
    """A champion whose model loads but was fit on another schema, as after a column was renamed."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(project.tracking_uri)
    x = pd.DataFrame({"renamed_column": [0.0, 1.0, 2.0, 3.0]})
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 0, 1, 1]), name="model")
    client = project.mlflow_client()
    version = client.create_model_version(MODEL, source=info.model_uri, run_id=info.run_id, model_id=info.model_id)
    client.set_registered_model_alias(MODEL, tracking.CHAMPION, str(version.version))
    return str(version.version)


def test_a_champion_that_cannot_score_blocks_promotion_and_the_candidate_waits_as_challenger(trained: Project):
    broken = install_champion_that_cannot_score(trained)
    result = retrain_with_new_setup(trained)
    failed = failed_checks(result)
    assert set(failed) == {"no_regression_vs_champion", "no_slice_regression_vs_champion"}, failed
    assert f"cannot compare slices with champion v{broken}" in failed["no_slice_regression_vs_champion"]
    message = failed["no_regression_vs_champion"]
    assert f"cannot compare with champion v{broken}: it cannot score the current holdout" in message
    assert "approve_challenger" in message and "`champion` is unchanged" in message
    assert "champion_model" not in materialized(result)
    now = aliases(trained)
    assert now[tracking.CHAMPION] == broken and now[tracking.CHALLENGER] not in {broken, "1"}  # a new version waits


def test_a_registry_that_cannot_be_asked_fails_the_step_naming_the_endpoint(trained: Project, down: str):
    from ml_assets.defs.resources import MlflowResource

    resources = {**trained.resources(), "mlflow": MlflowResource(root=str(trained.root), tracking_uri=down)}
    result = contextvars.Context().run(
        dg.materialize,
        [*defs.assets, *(defs.asset_checks or [])],
        selection=dg.AssetSelection.assets("model_evaluation"),
        instance=trained.instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error, messages = failure.step_failure_data.error, []
    while error is not None:  # Dagster's retry wraps the step's own error
        messages.append(error.message)
        error = error.cause
    assert any(f"MLflow registry at `{down}` could not read the aliases" in m for m in messages), messages
    assert aliases(trained)[tracking.CHAMPION] == "1"


def test_a_pin_stops_automation_and_a_person_approves_from_the_ui(trained: Project):
    def launch(job: str, config: dict) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def(job).execute_in_process(
            run_config={"ops": config}, instance=trained.instance, resources=trained.resources(), raise_on_error=False
        )

    nobody = launch("pin_champion", {"set_pin": {"config": {"reason": "audit"}}})
    assert not nobody.success  # who asks must be known
    assert launch("pin_champion", {"set_pin": {"config": {"reason": "audit week", "requested_by": "ana"}}}).success
    result = retrain_with_new_setup(trained)
    failed = failed_checks(result)
    assert set(failed) == {"automation_may_promote"} and "pinned to v1 by ana" in failed["automation_may_promote"]
    challenger = aliases(trained)[tracking.CHALLENGER]
    assert aliases(trained)[tracking.CHAMPION] == "1"

    approved = launch(
        "approve_challenger", {"approve_version": {"config": {"reason": "reviewed", "requested_by": "bo"}}}
    )
    assert approved.success
    assert aliases(trained)[tracking.CHAMPION] == challenger
    client = trained.mlflow_client()
    assert client.get_model_version(MODEL, challenger).tags["ml_assets.approved_by"] == "bo: reviewed"
    assert {e.asset_key.to_user_string() for e in approved.get_asset_materialization_events()} == {
        "champion_model",
        "champion_history",
    }

    back = launch(
        "rollback_champion", {"roll_back_to": {"config": {"to_version": 1, "reason": "bad", "requested_by": "bo"}}}
    )
    assert back.success and aliases(trained)[tracking.CHAMPION] == "1"
    assert promotion.ROLLED_BACK_TAG in client.get_model_version(MODEL, challenger).tags
    actions = [e.action for e in promotion.history(client.get_registered_model(MODEL).tags)]
    assert actions == ["promote", "pin", "approve", "rollback"]


def test_a_relanded_batch_that_fails_takes_its_old_rows_out_and_the_books_balance(trained: Project):
    first = sorted(trained.landing.iterdir())[0]
    old_rows = len(pd.read_csv(first))
    from ml_assets.lib.demo_data import corrupt_batch

    corrupt_batch(pd.read_csv(first), kind="null_required", seed=1).to_csv(first, index=False)
    result = ingest(trained, first.name)[first.name]
    assert "null_limits" in failed_checks(result)
    assert not (trained.root / "data" / "validated" / f"{first.name}.parquet").exists()
    retrain = train(trained)
    [ledger] = [e for e in retrain.get_asset_check_evaluations() if e.check_name == "rows_accounted_for"]
    assert ledger.passed, ledger.description
    totals = {k: v.value for k, v in ledger.metadata.items() if k != "ledger"}
    assert totals["quarantined"] == old_rows and totals["landed"] == totals["validated"] + totals["quarantined"]
    snapshot = pd.read_parquet(trained.root / "data" / "snapshot" / "training_snapshot.parquet")
    assert first.name not in set(snapshot["_batch"]) and len(snapshot) == totals["in_snapshot"]


def test_a_validation_that_never_finished_is_validated_again(project: Project):
    [batch] = project.land(batches=1, rows=200)
    first = tick(landing_sensor, project)
    [request] = first.run_requests
    assert request.tags["ml_assets/trigger"] == "new_data"
    from ml_assets.lib.landing import file_md5

    # what a kill -9 of that run mid-validation leaves: the batch's materialization, no check results
    project.instance.add_dynamic_partitions("landing_batches", [batch.name])
    project.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "landed_batch",
            partition=batch.name,
            metadata={"dagster/row_count": 200},
            tags={"dagster/data_version": file_md5(batch)},
        )
    )
    found = tick(landing_sensor, project, cursor=first.cursor)
    [again] = found.run_requests
    assert again.tags["ml_assets/trigger"] == "revalidate" and again.partition_key == batch.name
    assert again.run_key.endswith(":retry1")
    ingest(project, batch.name)
    assert tick(landing_sensor, project, cursor=found.cursor).run_requests == []


def test_a_batch_whose_run_failed_before_it_started_is_requested_again_then_named(project: Project):
    """The soak's lost batches: the queue could not launch the run (a code server timeout), so the
    run failed before `landed_batch` and the ledger has no entry; the sensor must not forget the file."""
    [batch] = project.land(batches=1, rows=200)
    first = tick(landing_sensor, project)
    [request] = first.run_requests
    project.instance.add_dynamic_partitions("landing_batches", [batch.name])  # what the tick's result does
    cursor = first.cursor
    for attempt in (1, 2, 3):  # no run ever materializes `landed_batch`: each tick asks again, with a new key
        found = tick(landing_sensor, project, cursor=cursor)
        [again] = found.run_requests
        assert again.partition_key == batch.name and again.tags["ml_assets/trigger"] == "revalidate"
        assert again.run_key == f"{request.run_key}:retry{attempt}"
        cursor = found.cursor
    given_up = tick(landing_sensor, project, cursor=cursor)
    assert given_up.run_requests == []
    assert f"validation of {batch.name} failed 3 times; see their runs" in skipped(given_up)


def test_odd_names_map_to_safe_keys_and_validate(project: Project):
    [batch] = project.land(batches=1, rows=200)
    odd = batch.rename(project.landing / f"données du {'très ' * 35}long lot.v2.csv")
    found = tick(landing_sensor, project)
    [request] = found.run_requests
    key = request.partition_key
    assert key != odd.name and len(key) <= 100 and request.tags["ml_assets/file"] == odd.name[:200]
    result = ingest(project, key)[key]
    assert result.success, failed_checks(result)
    assert (project.root / "data" / "validated" / f"{key}.parquet").is_file()


def test_more_than_a_thousand_files_each_validated_once(project: Project):
    project.landing.mkdir(parents=True)
    header = "customer_id,tenure_months,churned\n"
    for i in range(1200):
        (project.landing / f"f{i:04d}.csv").write_text(f"{header}C{i},{i % 70},{i % 2}\n")
    project.edit_params(lambda raw: raw["automation"].update(max_batches_per_tick=500))
    cursor, requested = None, []
    for _ in range(4):
        result = tick(landing_sensor, project, cursor=cursor)
        requested += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
    assert len(requested) == 1200 and len(set(requested)) == 1200


def test_a_file_still_being_written_is_not_taken(project: Project):
    project.edit_params(lambda raw: raw["automation"].update(settle_seconds=30))
    [batch] = project.land(batches=1, rows=200)
    text = batch.read_text()
    batch.write_text(text[: len(text) // 2])  # cut mid-row, as a crashed or slow writer leaves it
    waiting = tick(landing_sensor, project)
    assert waiting.run_requests == [] and "left alone for 30 s" in (waiting.skip_reason.skip_message or "")
    old = time.time() - 60
    os.utime(batch, (old, old))
    still = tick(landing_sensor, project, cursor=waiting.cursor)
    assert still.run_requests == [] and "cut while being written" in (still.skip_reason.skip_message or "")
    batch.write_text(text)
    os.utime(batch, (old, old))
    [request] = tick(landing_sensor, project, cursor=still.cursor).run_requests
    assert request.partition_key == batch.name


@pytest.mark.parametrize("how", ["cli", "sensor"])
def test_batches_ingested_by_one_path_are_not_ingested_again_by_the_other(project: Project, how: str):
    names = [p.name for p in project.land(batches=2, rows=200)]
    ingest(project, *names)  # what `make run` (or a person, or a sensor run) did
    assert tick(landing_sensor, project).run_requests == []  # a fresh sensor cursor: still nothing to do
    if how == "cli":
        from ml_assets.cli import ingest_new_batches
        from ml_assets.lib.config import load_params

        params = load_params(project.root / "params.yaml")
        assert ingest_new_batches(defs, project.instance, project.landing, params=params) == {}


def test_materialize_all_again_counts_no_unchanged_batch_as_new_data(trained: Project):
    from ml_assets.defs.sensors import retrain_sensor

    settled = tick(retrain_sensor, trained)
    names = sorted(trained.instance.get_dynamic_partitions("landing_batches"))
    for name in names:  # what "Materialize all" does to the partitioned assets: the same bytes again
        materialize(trained, dg.AssetSelection.assets("landed_batch", "validated_batch"), partition_key=name)
    again = tick(retrain_sensor, trained, cursor=settled.cursor)
    assert again.run_requests == [] and again.skip_reason.skip_message.startswith("0 new validated rows")


def test_a_canary_rolled_back_by_serving_moves_champion_back_only_if_it_still_points_there(trained: Project):
    from ml_assets.defs.sensors import canary_rollback

    client = trained.mlflow_client()
    v1 = client.get_model_version(MODEL, "1")
    v2 = tracking.register_version(
        client, model_name=MODEL, model_uri=v1.source, run_id=v1.run_id, tags={}, description=""
    )
    promotion.move_champion(
        client,
        MODEL,
        to_version=str(v2.version),
        expected="1",
        action="approve",
        reason="t",
        actor="t",
        run_id="r",
        now=promotion_now(),
        automated=False,
    )

    def report_rollback() -> dg.RunRequest:
        trained.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "rollout",
                metadata={"verdict": "rolled_back", "candidate_version": 2, "stable_version": 1, "reason": "5xx 30%"},
            )
        )
        context = dg.build_sensor_context(instance=trained.instance, resources=trained.resources(), definitions=defs)
        [request] = canary_rollback.evaluate_tick(context).run_requests or []
        return request

    def run(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def("rollback_champion").execute_in_process(
            run_config=request.run_config,
            instance=trained.instance,
            resources=trained.resources(),
            raise_on_error=False,
        )

    request = report_rollback()
    assert run(request).success and aliases(trained)[tracking.CHAMPION] == "1"
    assert promotion.ROLLED_BACK_TAG in client.get_model_version(MODEL, "2").tags
    stale = run(request)  # champion is no longer v2: the same request changes nothing
    assert not stale.success and aliases(trained)[tracking.CHAMPION] == "1"


def promotion_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_an_unchanged_batch_validated_again_keeps_its_rows_in_the_books_meanwhile(trained: Project, tmp_path: Path):
    """ "Materialize all" re-lands every batch: a training run that counts rows meanwhile must still balance."""
    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib.landing import file_md5
    from ml_assets.lib.ledger import reconcile
    from ml_assets.lib.snapshot import build_snapshot

    first, second = sorted(trained.landing.iterdir())[:2]

    def landed_again(batch: Path, md5: str) -> None:  # a landed_batch materialization whose checks still run
        trained.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "landed_batch",
                partition=batch.name,
                metadata={"dagster/row_count": 400},
                tags={"dagster/data_version": md5},
            )
        )

    landed_again(first, file_md5(first))
    entries = {e.batch: e for e in read_ledger(trained.instance, BATCH_CHECKS)}
    assert entries[first.name].status == "validated"
    snapshot = build_snapshot(trained.root / "data" / "validated", tmp_path / "snapshot.parquet", target="churned")
    report = reconcile(list(entries.values()), snapshot)
    assert report.balanced, report.summary()
    assert first.name not in {r.partition_key for r in tick(landing_sensor, trained).run_requests}

    landed_again(second, "0" * 32)  # other bytes under a known name: not validated until their checks pass
    entries = {e.batch: e for e in read_ledger(trained.instance, BATCH_CHECKS)}
    assert entries[second.name].status == "pending"
    assert not reconcile(list(entries.values()), snapshot).balanced
