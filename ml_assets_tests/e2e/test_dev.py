"""`make dev` as a person runs it: one command brings up Dagster, the MLflow UI and the Data Docs; Ctrl-C ends all."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_assets_tests.conftest import REPO, Project
from ml_assets_tests.e2e.harness import Profile, devserver, free_ports, graphql

pytestmark = pytest.mark.slow

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
    project.land(batches=1, rows=200)  # something for the sensors to do while it runs (and no demo data)
    ports = free_ports("dagster", "mlflow", "docs", "grpc")
    env = make_dev_env(project, tmp_path / "dagster_home", ports)
    command = ["make", "--no-print-directory", "-C", str(REPO), "dev", f"PORT={ports['dagster']}"]
    with devserver(command, state=project.root / ".dev", env=env, cwd=REPO) as profile:
        yield profile


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def test_make_dev_serves_dagster_mlflow_and_data_docs_and_ctrl_c_stops_every_process(make_dev: Profile):
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

    seconds = make_dev.interrupt(within=10)
    assert make_dev.process.returncode is not None
    assert "all services stopped" in make_dev.log.read_text(), make_dev.log.read_text()[-2000:]
    print(f"every process gone {seconds:.1f} s after SIGINT")
