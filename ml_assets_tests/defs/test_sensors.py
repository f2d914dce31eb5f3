"""Sensor and schedule ticks with `build_sensor_context`, on real materializations."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.defs.sensors import alert_on_run_failure, landing_sensor, retrain_sensor, run_trigger, weekly_retrain
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import ingest


def tick(sensor, project: Project, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=project.instance, cursor=cursor, resources=project.resources(), definitions=defs
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def skipped(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message or "" if result.skip_reason else ""


def test_landing_sensor_requests_each_new_content_once(project: Project):
    first, second = project.land(batches=2, rows=100)
    result = tick(landing_sensor, project)
    assert [r.partition_key for r in result.run_requests] == [first.name, second.name]
    assert all(
        r.run_key.startswith("batch:") and r.tags["ml_assets/trigger"] == "new_data" for r in result.run_requests
    )
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [first.name, second.name]

    again = tick(landing_sensor, project, cursor=result.cursor)  # the cursor survives a daemon restart
    assert again.run_requests == []

    shutil.copy(first, project.landing / "renamed_copy.csv")  # same bytes, another name
    os.utime(second, None)  # touched: new mtime, same bytes
    copied = tick(landing_sensor, project, cursor=again.cursor)
    assert copied.run_requests == []

    [third] = project.land(batches=1, rows=100, seed=5, start="2027-02-01")
    new = tick(landing_sensor, project, cursor=copied.cursor)
    assert [r.partition_key for r in new.run_requests] == [third.name]


def test_landing_sensor_without_cursor_reuses_run_keys(project: Project):
    project.land(batches=1, rows=100)
    keys_a = [r.run_key for r in tick(landing_sensor, project).run_requests]
    keys_b = [r.run_key for r in tick(landing_sensor, project).run_requests]  # cursor lost
    assert keys_a == keys_b  # Dagster refuses a run key it has seen: no second run


def test_retrain_sensor_trains_first_model_when_batches_settle(project: Project):
    names = [p.name for p in project.land(batches=2, rows=300)]
    ingest(project, *names)
    result = tick(retrain_sensor, project)
    [request] = result.run_requests
    assert request.tags["ml_assets/trigger"] == "new_data"
    assert "600 validated rows" in request.tags["ml_assets/trigger_detail"]
    assert tick(retrain_sensor, project, cursor=result.cursor).run_requests == []  # same events: nothing new


def test_retrain_sensor_on_small_stationary_batch_and_on_drift(trained: Project):
    settled = tick(retrain_sensor, trained)  # read the history: the first retrain request
    [stationary] = trained.land(batches=1, rows=300, seed=21, start="2027-03-01")
    ingest(trained, stationary.name)
    quiet = tick(retrain_sensor, trained, cursor=settled.cursor)
    assert quiet.run_requests == []
    assert "300 new validated rows" in skipped(quiet) and skipped(quiet).endswith("no drift")

    [drifted] = trained.land(batches=1, rows=400, seed=22, start="2027-03-02", covariate_drift=1.0)
    ingest(trained, drifted.name)
    result = tick(retrain_sensor, trained, cursor=quiet.cursor)
    [request] = result.run_requests
    assert request.tags["ml_assets/trigger"] == "drift"
    assert "monthly_charges" in request.tags["ml_assets/trigger_detail"]

    [drifted_again] = trained.land(batches=1, rows=400, seed=23, start="2027-03-03", covariate_drift=1.0)
    ingest(trained, drifted_again.name)
    cooling = tick(retrain_sensor, trained, cursor=result.cursor)
    assert cooling.run_requests == [] and "cooldown" in skipped(cooling)


def test_weekly_schedule_retrains_only_when_data_changed(trained: Project):
    context = dg.build_schedule_context(instance=trained.instance, resources=trained.resources())
    assert isinstance(weekly_retrain(context), dg.SkipReason)
    [batch] = trained.land(batches=1, rows=200, seed=31, start="2027-04-01")
    ingest(trained, batch.name)
    request = weekly_retrain(dg.build_schedule_context(instance=trained.instance, resources=trained.resources()))
    assert isinstance(request, dg.RunRequest) and request.tags["ml_assets/trigger"] == "schedule"


def test_failed_gate_run_raises_an_alert_to_the_webhook(project: Project, webhook):
    url, received = webhook
    project.webhook_url = url
    [bad] = project.land(batches=1, rows=300, bad="wrong_dtype")
    result = ingest(project, bad.name)[bad.name]
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=project.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources=project.resources(),
    ).for_run_failure()
    alert_on_run_failure(context)
    [alert] = received
    assert bad.name in alert["title"] and "columns_and_dtypes" in alert["text"]
    # a run with no trigger tag (here: launched in-process, as a person would) gets one from the alert
    assert alert["context"]["trigger"] == "manual"
    assert project.instance.get_run_by_id(result.run_id).tags["ml_assets/trigger"] == "manual"


@pytest.mark.parametrize(
    ("tags", "trigger"),
    [
        ({"ml_assets/trigger": "drift", "dagster/backfill": "abc"}, "drift"),
        ({"dagster/backfill": "abc", "dagster/partition": "b.csv"}, "backfill"),
        ({"dagster/from_automation_condition": "true"}, "automation"),
        ({"dagster/sensor_name": "per_batch_automation"}, "automation"),
        ({"dagster/user": "someone"}, "manual"),
    ],
)
def test_every_run_has_a_trigger(tags: dict[str, str], trigger: str):
    assert run_trigger(tags) == trigger
