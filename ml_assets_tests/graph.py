"""Helpers that run the asset graph the way the jobs do, with `dagster.materialize`."""

from __future__ import annotations

import contextvars
from typing import Any

import dagster as dg

from ml_assets.definitions import defs
from ml_assets_tests.conftest import Project

ALL_ASSETS = list(defs.assets or []) + list(defs.asset_checks or [])
INGEST = dg.AssetSelection.assets("landed_batch", "validated_batch", "batch_drift", "live_performance", "predictions")
TRAIN = dg.AssetSelection.assets("training_snapshot").downstream() - dg.AssetSelection.assets("predictions")


def materialize(project: Project, selection: dg.AssetSelection, **kwargs: Any) -> dg.ExecuteInProcessResult:
    """`dagster.materialize` of the project's graph with its temp stores.

    It runs in an empty `contextvars.Context`: Dagster keeps a context-local pointer to the
    "current" instance's state storage, and pytest's fixture teardown can leave it pointing at an
    instance an earlier test already closed.
    """
    return contextvars.Context().run(
        dg.materialize,
        ALL_ASSETS,
        selection=selection,
        instance=project.instance,
        resources=project.resources(),
        raise_on_error=False,
        **kwargs,
    )


def ingest(project: Project, *names: str) -> dict[str, dg.ExecuteInProcessResult]:
    """Validates each named landed batch in its own partitioned run."""
    project.instance.add_dynamic_partitions("landing_batches", list(names))
    return {name: materialize(project, INGEST, partition_key=name) for name in names}


def train(project: Project) -> dg.ExecuteInProcessResult:
    """Runs snapshot -> ... -> champion."""
    return materialize(project, TRAIN)


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, str | None]:
    """Check name -> description, for every failed check of a run."""
    return {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """Asset keys materialized by a run."""
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
