"""Declarative automation: a batch materialized by hand is kept only when its blocking checks passed."""

from __future__ import annotations

import dagster as dg

from ml_assets.definitions import defs
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import materialize

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
