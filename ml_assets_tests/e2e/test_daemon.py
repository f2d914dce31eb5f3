"""The sensors retrain by themselves: the real webserver, daemon and code server, on temp stores."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from ml_assets.definitions import defs
from ml_assets.defs.jobs import TRIGGER_TAG
from ml_assets.lib import tracking
from ml_assets.lib.demo_data import write_demo_batches
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_staleness import TRAINING_SIDE
from ml_assets_tests.e2e.harness import Run, dagster_dev, graphql, runs, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(1200)]

INGEST, TRAIN = "ingest_batch_job", "training_job"


ASSETS = (
    "{ assetNodes { assetKey { path } staleStatus assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
)
LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { ... on RepositoryLocation"
    " { repositories { sensors { name sensorState { status } }"
    " schedules { name scheduleState { status } } } } } } } } }"
)


def registered_versions(project: Project) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        return [str(v.version) for v in project.mlflow_client().search_model_versions("name = 'churn_classifier'")]
    except MlflowException:
        return []


def fast(raw: dict[str, Any]) -> None:
    raw["automation"] = {"landing_interval_seconds": 3, "retrain_interval_seconds": 3}


def test_sensors_validate_new_batches_and_retrain_only_when_needed(project: Project, tmp_path: Path):
    project.edit_params(fast)
    batches = project.land(batches=3, rows=400)
    with dagster_dev(project, tmp_path / "home") as dev:
        # 0. the UI serves every asset and check, and the sensors and schedule are on
        nodes = graphql(dev.url, ASSETS)["assetNodes"]
        served = {
            "/".join(n["assetKey"]["path"]): {c["name"] for c in n["assetChecksOrError"]["checks"]} for n in nodes
        }
        graph = defs.resolve_asset_graph()
        assert set(served) == {k.to_user_string() for k in graph.get_all_asset_keys()}
        checks = {key.name for key in graph.asset_check_keys}
        assert set().union(*served.values()) == checks
        [location] = graphql(dev.url, LOCATIONS)["workspaceOrError"]["locationEntries"]
        [repository] = location["locationOrLoadError"]["repositories"]
        running = {s["name"] for s in repository["sensors"] if s["sensorState"]["status"] == "RUNNING"}
        assert {"landing_sensor", "retrain_sensor", "alert_on_run_failure"} <= running
        assert repository["schedules"][0]["scheduleState"]["status"] == "RUNNING"

        # 1. landed batches -> validated -> the first model, registered and promoted, with no button pressed
        first = wait_for(
            "the first training run to finish",
            lambda: dev.finished(TRAIN, tags={"ml_assets/trigger": "new_data"}),
            timeout=420,
        )
        assert first[0].is_success, dev.log.read_text()[-3000:]
        assert len(dev.finished(INGEST)) == 3
        assert registered_versions(project) == ["1"]

        # 2. the same bytes under another name start nothing
        shutil.copy(batches[0], project.landing / "same_bytes_again.csv")
        time.sleep(12)
        assert len(dev.runs(INGEST)) == 3

        # 3. a small stationary batch is validated but retrains nothing
        [small] = project.land(batches=1, rows=300, seed=21, start="2027-03-01")
        wait_for("the small batch's run", lambda: len(dev.finished(INGEST)) == 4, timeout=180)
        time.sleep(10)  # several retrain ticks
        assert len(dev.runs(TRAIN)) == 1, [r.tags.get("ml_assets/trigger") for r in dev.runs(TRAIN)]

        # 4. a drifted batch starts a retrain tagged as drift
        project.land(batches=1, rows=400, seed=22, start="2027-03-02", covariate_drift=1.0)
        drift = wait_for(
            "a retrain tagged drift",
            lambda: dev.finished(TRAIN, tags={"ml_assets/trigger": "drift"}),
            timeout=420,
        )
        assert drift[0].is_success, dev.log.read_text()[-3000:]
        assert small.name in dev.instance.get_dynamic_partitions("landing_batches")

        # 5. editing a param and reloading the code location makes exactly the descendants stale
        project.edit_params(lambda raw: raw["split"].update(seed=7))
        reload = (
            f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{location["name"]}") {{ __typename }} }}'
        )
        assert graphql(dev.url, reload)["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry"
        status = {"/".join(n["assetKey"]["path"]): n["staleStatus"] for n in graphql(dev.url, ASSETS)["assetNodes"]}
        assert {name: status[name] for name in TRAINING_SIDE} == dict.fromkeys(TRAINING_SIDE, "STALE")
        assert status["training_snapshot"] == "FRESH"


CHECK_EXECUTIONS = """
query($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 20) {
    runId status partition evaluation { success description }
  }
}
"""

LATEST_MATERIALIZATION = """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(limit: 1) {
    runId
    metadataEntries {
      label
      ... on TableMetadataEntry { table { records } }
      ... on IntMetadataEntry { intValue }
      ... on TextMetadataEntry { text }
    }
  } } }
}
"""


def land_together(project: Project, staging: Path, **kwargs: Any) -> list[Path]:
    """Writes demo batches aside, then moves them into the landing folder (a rename each), so one tick sees all."""
    written = write_demo_batches(staging, **kwargs)
    landed = [project.landing / path.name for path in written]
    for path, target in zip(written, landed, strict=True):
        os.replace(path, target)
    return landed


def finished(url: str, job: str, trigger: str) -> list[Run]:
    return [r for r in runs(url) if r.job == job and r.tags.get(TRIGGER_TAG) == trigger and r.finished]


@pytest.mark.timeout(1800)  # ~4 min on an idle 2-core machine; runs take several times longer on shared cores
def test_concept_drift_degrades_the_champion_the_daemon_retrains_and_the_ui_shows_the_history(
    trained: Project, tmp_path: Path, webhook: tuple[str, list[dict]]
):
    trained.webhook_url, alerts = webhook
    trained.edit_params(fast)
    # The fixture validated three clean batches and promoted v1 in-process (as `make run` does), in the
    # Dagster instance under tmp_path/dagster_home: the daemon runs on that same instance.
    with dagster_dev(trained, tmp_path / "dagster_home") as dev:
        # two labelled batches on which the features no longer drive churn as they did (concept drift 0.4)
        drifted = land_together(
            trained,
            tmp_path / "staging",
            batches=2,
            rows_per_batch=400,
            seed=41,
            start_date=dt.date(2027, 5, 1),
            concept_drift=0.4,
        )
        [retrain] = wait_for(
            "the performance retrain to finish", lambda: finished(dev.url, TRAIN, "performance"), timeout=600, every=3
        )
        [rollback] = wait_for(
            "the rollback weighing to finish",
            lambda: finished(dev.url, "live_rollback_job", "performance"),
            timeout=120,
            every=3,
        )
        found = runs(dev.url)

        # 1. only the new batches were validated: the batches ingested in-process are in the same ledger
        ingested = [r for r in found if r.job == INGEST]
        assert sorted(r.tags["dagster/partition"] for r in ingested) == sorted(p.name for p in drifted)
        assert all(r.status == "SUCCESS" for r in ingested)  # the batches are valid; only the relation changed

        # 2. the UI shows the champion failing its live check on each drifted batch, and a person was alerted
        key = {"path": ["live_performance"]}
        executions = graphql(dev.url, CHECK_EXECUTIONS, {"key": key, "check": "champion_meets_min_live_score"})
        latest: dict[str, dict[str, Any]] = {}
        for execution in executions["assetCheckExecutions"]:  # newest first; a planned one has no evaluation yet
            if execution["evaluation"] is not None:
                latest.setdefault(execution["partition"], execution["evaluation"])
        failed = {batch: e["description"] for batch, e in latest.items() if not e["success"]}
        assert set(failed) == {p.name for p in drifted}, latest
        assert all("below the minimum" in description for description in failed.values()), failed
        assert any("v1 degraded" in a["title"] for a in alerts), alerts
        assert any("no earlier version is better" in a["title"] for a in alerts), alerts  # v1 has no earlier one

        # 3. the runs the sensor started say why
        assert retrain.status == "SUCCESS", dev.log.read_text()[-3000:]
        assert "below the minimum" in retrain.tags["ml_assets/trigger_detail"]
        assert rollback.status == "SUCCESS"

        # 4. the champion history (what `champion_history` shows) lists the change, written by that retrain
        answer = graphql(dev.url, LATEST_MATERIALIZATION, {"key": {"path": ["champion_history"]}})
        [latest] = answer["assetOrError"]["assetMaterializations"]
        assert latest["runId"] == retrain.run_id
        entries = {e["label"]: e for e in latest["metadataEntries"]}
        assert entries["champion"]["text"] == "v2" and entries["events"]["intValue"] == 2
        newest = json.loads(entries["history"]["table"]["records"][0])
        assert (newest["action"], newest["champion"], newest["before"]) == ("promote", "v2", "v1"), newest
        assert newest["actor"] == "automation:performance" and newest["run"] == retrain.run_id[:8], newest
        aliases = tracking.read_aliases(trained.mlflow_client(), "churn_classifier")
        assert (aliases[tracking.CHAMPION], aliases[tracking.PREVIOUS_CHAMPION]) == ("2", "1")
