"""Declarative automation: a batch materialized by hand is kept only when its blocking checks passed."""

from __future__ import annotations

import contextvars

import dagster as dg

from ml_assets.definitions import defs
from ml_assets.defs.sensors import landing_sensor
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import materialize, materialized

LANDED = dg.AssetSelection.assets("landed_batch")


def land_by_hand(project: Project, name: str) -> dg.ExecuteInProcessResult:
    """What a person does in the UI: materialize `landed_batch` (its checks run with it) and nothing else."""
    project.instance.add_dynamic_partitions("landing_batches", [name])
    return materialize(project, LANDED, partition_key=name)


def test_eager_keeps_a_good_batch_and_holds_a_bad_one(project: Project):
    before = dg.evaluate_automation_conditions(defs=defs, instance=project.instance)  # the sensor's earlier tick
    [good] = project.land(batches=1, rows=200)
    [bad] = project.land(batches=1, rows=200, seed=3, start="2027-01-01", bad="unknown_category")
    assert land_by_hand(project, good.name).success
    assert not land_by_hand(project, bad.name).success  # its blocking check failed
    tick = dg.evaluate_automation_conditions(defs=defs, instance=project.instance, cursor=before.cursor)
    assert set(tick.get_requested_partitions(dg.AssetKey("validated_batch"))) == {good.name}


def test_a_batch_its_own_run_validated_gets_no_second_run_before_a_champion_exists(project: Project):
    # As under the daemon: the landing sensor adds the partition and requests the per-batch job, the
    # automation sensor ticks while it runs and after. Without a champion the monitoring assets produce
    # nothing (output_required=False): that must not look like new work to the automation sensor.
    before = dg.evaluate_automation_conditions(defs=defs, instance=project.instance)
    project.land(batches=1, rows=200)
    context = dg.build_sensor_context(instance=project.instance, resources=project.resources(), definitions=defs)
    found = landing_sensor(context)
    assert isinstance(found, dg.SensorResult) and found.run_requests and found.dynamic_partitions_requests
    [request] = found.run_requests
    project.instance.add_dynamic_partitions("landing_batches", [request.partition_key])
    while_running = dg.evaluate_automation_conditions(defs=defs, instance=project.instance, cursor=before.cursor)
    assert while_running.total_requested == 0
    result = contextvars.Context().run(
        defs.resolve_job_def("ingest_batch_job").execute_in_process,
        instance=project.instance,
        partition_key=request.partition_key,
        asset_selection=request.asset_selection,
        tags=request.tags,
        raise_on_error=False,
    )
    assert result.success and "batch_drift" not in materialized(result)  # no champion to drift from
    after = dg.evaluate_automation_conditions(defs=defs, instance=project.instance, cursor=while_running.cursor)
    monitored = ("validated_batch", "batch_drift", "live_performance", "predictions")
    requested = {key: after.get_requested_partitions(dg.AssetKey(key)) for key in monitored}
    assert after.total_requested == 0, requested
