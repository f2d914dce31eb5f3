"""Shared fixtures: a throw-away project (params, DVC repo and remote, MLflow store, Dagster instance)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


UNGROUPED = pytest.StashKey[set[str]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notes the `xdist_group` tests that pytest-xdist could not tag with their group (see below)."""
    if getattr(config.option, "loadgroup", False):
        grouped = [i.nodeid for i in items if i.get_closest_marker("xdist_group")]
        config.stash[UNGROUPED] = {nodeid for nodeid in grouped if "@" not in nodeid}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fails a grouped test that `--dist loadgroup` would run apart from its group.

    pytest-xdist groups tests by a `@group` suffix it adds to their node ids on each worker; when a
    pytest release stops that from sticking (9.2 did, see pyproject.toml), a group's tests are spread
    over workers and the module-scoped server profile they share starts twice and races.
    """
    if item.nodeid in item.config.stash.get(UNGROUPED, set()):
        pytest.fail(
            f"pytest-xdist did not tag `{item.nodeid}` with its `xdist_group` under pytest {pytest.__version__}, "
            "so its group would be split over workers: use the locked versions (`make test`) or TEST_WORKERS=0"
        )


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, already-migrated MLflow SQLite store (migrations take seconds; copying takes none)."""
    from mlflow import MlflowClient

    with built_once(tmp_path_factory, "mlflow_template") as (folder, build):
        if build:
            MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@contextmanager
def built_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """A session template shared by every pytest-xdist worker: `(folder, build)`, build True for the first.

    The first worker to get here builds it under a file lock while the others wait, then reuse it
    (pytest-xdist's documented pattern for session fixtures); the tests copy it, never change it.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base  # the run's folder, above the workers'
    folder, done = shared / name, shared / f"{name}.built"
    with FileLock(shared / f"{name}.lock"):
        build = not done.exists()
        if build:
            shutil.rmtree(folder, ignore_errors=True)  # a build an earlier worker did not finish
            folder.mkdir()
        yield folder, build
        done.touch()


@dataclass
class Project:
    """A temporary project root with its own stores."""

    root: Path
    dvc_remote: Path
    instance: dg.DagsterInstance
    webhook_url: str | None = None

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}"

    @property
    def landing(self) -> Path:
        return self.root / "data" / "landing"

    def edit_params(self, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.root / "params.yaml"
        raw = yaml.safe_load(path.read_text())
        change(raw)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))

    def resources(self) -> dict[str, Any]:
        from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource

        return {
            "project": ProjectResource(root=str(self.root), dvc_remote=str(self.dvc_remote)),
            "mlflow": MlflowResource(root=str(self.root), tracking_uri=self.tracking_uri),
            "alerts": AlertResource(webhook_url=self.webhook_url),
        }

    def land(
        self, *, batches: int = 1, rows: int = 400, seed: int = 11, start: str = "2026-12-01", **kwargs: Any
    ) -> list[Path]:
        from ml_assets.lib.demo_data import write_demo_batches

        return write_demo_batches(
            self.landing,
            batches=batches,
            rows_per_batch=rows,
            seed=seed,
            start_date=dt.date.fromisoformat(start),
            **kwargs,
        )

    def mlflow_client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


def _new_project_files(base: Path, mlflow_template: Path) -> None:
    """Lays out a project root: repo params (smaller models), dvc.yaml, the GX suite, an empty MLflow store."""
    root = base / "project"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))  # machine state
    (root / ".mlflow").mkdir()
    shutil.copy(mlflow_template, root / ".mlflow" / "mlflow.db")
    (base / "dagster_home").mkdir()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    candidates = raw["training"]["candidates"]
    candidates["random_forest"]["params"]["n_estimators"] = 40
    candidates["hist_gradient_boosting"]["params"]["max_iter"] = 60
    raw["gates"]["bootstrap_samples"] = 200
    raw["gates"]["latency_samples"] = 50
    raw["automation"]["settle_seconds"] = 0  # files written by the tests are complete; settling is tested on its own
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@contextmanager
def _open_project(base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """Points the environment at the project under `base` and opens its Dagster instance."""
    root, remote = base / "project", base / "dvc_remote"
    monkeypatch.setenv("ML_ASSETS_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("ML_ASSETS_DVC_REMOTE", str(remote))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    with dg.instance_for_test(temp_dir=str(base / "dagster_home")) as instance:
        yield Project(root=root, dvc_remote=remote, instance=instance)


@pytest.fixture
def project(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project in a temp folder with empty stores (Dagster, MLflow, DVC remote) and no data."""
    _new_project_files(tmp_path, mlflow_template)
    with _open_project(tmp_path, monkeypatch) as project:
        yield project


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Path:
    """Built once: three validated batches and a promoted champion v1 (copied for each test)."""
    from ml_assets_tests.graph import failed_checks, ingest, train

    with built_once(tmp_path_factory, "trained_template") as (base, build):
        if build:
            _new_project_files(base, mlflow_template)
            with pytest.MonkeyPatch.context() as monkeypatch, _open_project(base, monkeypatch) as project:
                names = [p.name for p in project.land(batches=3, rows=400)]
                results = ingest(project, *names)
                assert all(r.success for r in results.values()), {n: failed_checks(r) for n, r in results.items()}
                result = train(project)
                assert result.success, failed_checks(result)
    return base


@pytest.fixture
def trained(tmp_path: Path, trained_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project whose first three batches were validated and whose first champion was promoted."""
    shutil.copytree(trained_template, tmp_path, dirs_exist_ok=True, symlinks=True)
    with _open_project(tmp_path, monkeypatch) as project:
        yield project


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on 127.0.0.1 that records every JSON body POSTed to it."""
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Recorder.received
    server.shutdown()


class _Unavailable(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"maintenance")

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An MLflow endpoint that answers every request with HTTP 503 (MLflow's own retries cut to one)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    server = HTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
