"""One MLflow run per Dagster run (dagster-mlflow's `MlFlow`), each candidate nested in it, ended with it."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from ml_assets.defs.sensors import alert_on_run_failure, close_mlflow_runs
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import train


def runs_of(project: Project, dagster_run_id: str) -> list:
    client = project.mlflow_client()
    experiment = client.get_experiment_by_name("ml_assets").experiment_id
    return client.search_runs([experiment], f"tags.dagster_run_id = '{dagster_run_id}'")


def status_sensor_context(project: Project, result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType):
    event = next(e for e in result.all_events if e.event_type == event_type)
    return dg.build_run_status_sensor_context(
        sensor_name="s",
        dagster_instance=project.instance,
        dagster_run=result.dagster_run,
        dagster_event=event,
        resources=project.resources(),
    )


def test_a_training_run_is_one_parent_run_with_a_nested_run_per_candidate_finished_with_it(project: Project):
    names = [p.name for p in project.land(batches=2, rows=400)]
    from ml_assets_tests.graph import ingest

    ingest(project, *names)
    result = train(project)
    assert result.success
    runs = runs_of(project, result.run_id)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {c.data.tags["ml_assets.candidate"] for c in children} == {
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
    }
    assert parent.info.status == "RUNNING" and parent.data.tags["dvc.snapshot_md5"]  # until the Dagster run's end says
    close_mlflow_runs(status_sensor_context(project, result, dg.DagsterEventType.RUN_SUCCESS))
    assert {r.info.status for r in runs_of(project, result.run_id)} == {"FINISHED"}


def test_a_failing_candidate_fails_the_parent_run_and_leaves_nothing_running(
    project: Project, monkeypatch: pytest.MonkeyPatch
):
    names = [p.name for p in project.land(batches=2, rows=400)]
    from ml_assets.lib import training
    from ml_assets_tests.graph import ingest

    ingest(project, *names)
    search = training.search_candidate

    def search_or_crash(*args: Any, spec: Any, **kwargs: Any) -> Any:
        if spec.name == "random_forest":
            raise MemoryError("injected: the random forest search ran out of memory")
        return search(*args, spec=spec, **kwargs)

    monkeypatch.setattr(training, "search_candidate", search_or_crash)
    result = train(project)
    assert not result.success
    context = status_sensor_context(project, result, dg.DagsterEventType.RUN_FAILURE).for_run_failure()
    alert_on_run_failure(context)
    runs = runs_of(project, result.run_id)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FAILED"
    assert "RUNNING" not in {r.info.status for r in runs}
