"""`make dev` as a person runs it: one command brings up Dagster, the MLflow UI and the Data Docs; "Materialize all"
in the UI is as safe as the sensors; Ctrl-C ends all."""

from __future__ import annotations

import itertools
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_assets.definitions import defs
from ml_assets.defs.graph import TRAINING_POOL, WRITER_POOL
from ml_assets.defs.jobs import TRIGGER_TAG
from ml_assets.lib.landing import batch_version
from ml_assets_tests.conftest import REPO, Project
from ml_assets_tests.e2e.harness import (
    BACKFILL,
    LAUNCH_BACKFILL,
    Profile,
    Run,
    devserver,
    free_ports,
    graphql,
    op_pools,
    runs,
    wait_for,
    wait_for_ticks,
)

# One `make dev` start runs the whole newcomer's path (sensors, a backfill of the graph, Ctrl-C): ~5 min on an
# idle 2-core machine, three times that when the cores are shared, hence the longer timeout.
pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(1800)]

LOCATION = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name"
    " locationOrLoadError { __typename ... on RepositoryLocation { repositories { jobs { name } } } } } } } }"
)


def make_dev_env(project: Project, home: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a shell in which someone types `make dev`, pointed at the test's project and ports."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(project.root),
        "MLFLOW_TRACKING_URI": project.tracking_uri,
        "ML_ASSETS_DVC_REMOTE": str(project.dvc_remote),
        "ML_ASSETS_MLFLOW_PORT": str(ports["mlflow"]),
        "ML_ASSETS_DOCS_PORT": str(ports["docs"]),
        "ML_ASSETS_GRPC_PORT": str(ports["grpc"]),
    }


@pytest.fixture
def make_dev(project: Project, tmp_path: Path) -> Iterator[Profile]:
    """`make dev PORT=...` started in its own process group, on the test project's stores, until it is ready."""
    # Two batches (and no demo data): the sensors validate them and train the first model, and with more than
    # one partition "Materialize all" launches a backfill, as it does for a newcomer with the demo's four.
    project.land(batches=2, rows=400)
    ports = free_ports("dagster", "mlflow", "docs", "grpc")
    env = make_dev_env(project, tmp_path / "dagster_home", ports)
    command = ["make", "--no-print-directory", "-C", str(REPO), "dev", f"PORT={ports['dagster']}"]
    with devserver(command, state=project.root / ".dev", env=env, cwd=REPO) as profile:
        yield profile


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


ASSET_NODES = (
    "{ assetNodes { assetKey { path } isExecutable isObservable jobNames partitionKeys"
    " partitionDefinition { dimensionTypes { dynamicPartitionsDefinitionName } } } }"
)


def materialize_all(url: str) -> str:
    """Launches what "Materialize all" on the asset graph launches once "All" partitions are chosen; the backfill id.

    What Dagster 1.13's UI does (`LaunchAssetExecutionButton`, `LaunchAssetChoosePartitionsDialog`): the
    button takes every executable, non-observable asset; they share one partitions definition and one
    job, the hidden `__ASSET_JOB`, so it opens the partitions dialog on that job; with more than one key
    chosen it launches an asset backfill of every asset over those keys (`launchPartitionBackfill` with
    `assetSelection` and `partitionNames`, no partition set, as the job is hidden). One key would give
    a single run instead, hence two landed batches.
    """
    nodes = [n for n in graphql(url, ASSET_NODES)["assetNodes"] if n["isExecutable"] and not n["isObservable"]]
    [job] = set.intersection(*(set(n["jobNames"]) for n in nodes))  # what the UI's getCommonJob finds
    assert job.startswith("__ASSET_JOB"), job
    definitions = {
        d["dynamicPartitionsDefinitionName"]
        for n in nodes
        if n["partitionDefinition"]
        for d in n["partitionDefinition"]["dimensionTypes"]
    }
    assert definitions == {"landing_batches"}, definitions
    [keys] = {tuple(n["partitionKeys"]) for n in nodes if n["partitionDefinition"]}
    assert len(keys) > 1, keys
    params = {
        "tags": [],
        "assetSelection": [{"path": n["assetKey"]["path"]} for n in nodes],
        "partitionNames": list(keys),
        "fromFailure": False,
    }
    answer = graphql(url, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def all_finished(url: str) -> list[Run] | None:
    found = runs(url)
    return found if all(r.finished for r in found) else None


def all_tagged(url: str) -> list[Run] | None:
    """Every run, once each carries its trigger (tagged as it starts, or by the failure alert if it never did)."""
    found = runs(url)
    return found if all(TRIGGER_TAG in r.tags for r in found) else None


def overlaps(holders: list[Run]) -> list[tuple[str, str]]:
    """Pairs of runs (ids) whose start-to-end intervals intersect."""
    spans = sorted((r.start or 0.0, r.end or float("inf"), r.run_id) for r in holders)
    return [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def describe(found: list[Run]) -> list[dict[str, Any]]:
    return [{"job": r.job, "status": r.status, "trigger": r.tags.get(TRIGGER_TAG), "id": r.run_id[:8]} for r in found]


def test_make_dev_serves_everything_materialize_all_is_as_safe_as_the_sensors_and_ctrl_c_stops_all(
    make_dev: Profile, project: Project
):
    urls = make_dev.urls
    assert set(urls) == {"webserver", "mlflow-ui", "data-docs"}
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    assert answers(f"{urls['webserver']}/server_info") == 200
    assert answers(f"{urls['mlflow-ui']}/health") == 200
    assert answers(urls["mlflow-ui"]) == 200  # the UI page the assets link to
    assert answers(urls["data-docs"]) == 200
    [location] = graphql(urls["webserver"], LOCATION)["workspaceOrError"]["locationEntries"]
    loaded = location["locationOrLoadError"]
    assert loaded["__typename"] == "RepositoryLocation", loaded
    assert {"ingest_batch_job", "training_job"} <= {j["name"] for j in loaded["repositories"][0]["jobs"]}
    log = make_dev.log.read_text()
    assert "ready in" in log and "Ctrl-C stops everything" in log
    assert not any(line.startswith("WARNING") for line in log.splitlines())

    # 1. the sensors validate each landed batch once, then a newcomer clicks "Materialize all" (All partitions)
    url = urls["webserver"]
    files = sorted(project.landing.iterdir())
    wait_for(
        "the landing sensor's runs",
        lambda: len([r for r in runs(url) if r.job == "ingest_batch_job" and r.finished]) == len(files),
        timeout=300,
    )
    backfill = materialize_all(url)
    wait_for(
        "the backfill to finish",
        lambda: (
            graphql(url, BACKFILL, {"id": backfill})["partitionBackfillOrError"]["status"]
            not in {"REQUESTED", "CANCELING"}
        ),
        timeout=900,
        every=3,
    )
    wait_for("every run to finish", lambda: all_finished(url), timeout=600, every=3)

    # 2. then nothing is new: touching a landed file and more sensor ticks start no run
    settled = time.time()
    os.utime(files[0])
    wait_for_ticks(url, "landing_sensor", after=time.time(), count=2, timeout=120)
    [last_retrain_tick, *_] = wait_for_ticks(url, "retrain_sensor", after=settled, count=2, timeout=120)
    wait_for("every run to finish", lambda: all_finished(url), timeout=300, every=3)
    found = wait_for("every run to carry its trigger", lambda: all_tagged(url), timeout=60)
    # A run the queue could not hand to a process on an overloaded machine fails before it starts, having
    # done nothing; every run that did start succeeded.
    assert all(r.status == "SUCCESS" for r in found if r.start is not None), describe(found)
    launched_by_backfill = [r for r in found if r.tags.get("dagster/backfill") == backfill]
    assert launched_by_backfill and {r.tags[TRIGGER_TAG] for r in launched_by_backfill} == {"backfill"}
    ingested = [r for r in found if r.job == "ingest_batch_job"]
    assert sorted(r.tags["ml_assets/batch_md5"] for r in ingested) == sorted(batch_version(f, []) for f in files)
    assert {r.tags[TRIGGER_TAG] for r in ingested} == {"new_data"}
    trained = [r for r in found if r.job == "training_job"]
    assert [r.tags[TRIGGER_TAG] for r in trained] == ["new_data"], describe(found)  # the first model, no second
    # the retrain sensor counted none of the re-validated, unchanged batches as new rows
    assert last_retrain_tick["runIds"] == [], last_retrain_tick
    assert last_retrain_tick["skipReason"].startswith("0 new validated rows since the champion"), last_retrain_tick
    # the backfill's training on unchanged data resolved to the same registered version
    versions = project.mlflow_client().search_model_versions("name = 'churn_classifier'")
    assert [str(v.version) for v in versions] == ["1"]

    # 3. one training run and one champion writer at a time, however launched
    pools = op_pools(defs)
    for pool in (TRAINING_POOL, WRITER_POOL):
        holders = [r for r in found if any(pools.get(step) == pool for step in r.steps)]
        assert len(holders) >= 2, (pool, describe(holders))  # the sensor's training run and the backfill's
        assert overlaps(holders) == [], (pool, describe(holders))

    # 4. Ctrl-C
    seconds = make_dev.interrupt(within=10)
    assert make_dev.process.returncode is not None
    assert "all services stopped" in make_dev.log.read_text(), make_dev.log.read_text()[-2000:]
    print(f"every process gone {seconds:.1f} s after SIGINT")
