"""The sensors retrain by themselves: the real webserver, daemon and code server, on temp stores."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ml_assets.definitions import defs
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_staleness import TRAINING_SIDE
from ml_assets_tests.e2e.harness import dagster_dev, wait_for

pytestmark = pytest.mark.slow

INGEST, TRAIN = "ingest_batch_job", "training_job"


def graphql(url: str, query: str) -> dict[str, Any]:
    """Asks the webserver's GraphQL API (what the UI itself uses)."""
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


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


def test_sensors_validate_new_batches_and_retrain_only_when_needed(project: Project, tmp_path: Path):
    def fast(raw):
        raw["automation"] = {"landing_interval_seconds": 3, "retrain_interval_seconds": 3}

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
