"""Shared fixtures: a throw-away project (params, DVC repo and remote, MLflow store, Dagster instance)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, already-migrated MLflow SQLite store (migrations take seconds; copying takes none)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


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


@pytest.fixture
def project(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project root in a temp folder: repo params (smaller models), dvc.yaml, the GX suite, empty stores."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx")
    (root / ".mlflow").mkdir()
    shutil.copy(mlflow_template, root / ".mlflow" / "mlflow.db")
    remote = tmp_path / "dvc_remote"
    monkeypatch.setenv("ML_ASSETS_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("ML_ASSETS_DVC_REMOTE", str(remote))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        project = Project(root=root, dvc_remote=remote, instance=instance)

        def shrink(raw: dict[str, Any]) -> None:
            candidates = raw["training"]["candidates"]
            candidates["random_forest"]["params"]["n_estimators"] = 40
            candidates["hist_gradient_boosting"]["params"]["max_iter"] = 60
            raw["gates"]["bootstrap_samples"] = 200
            raw["gates"]["latency_samples"] = 50

        project.edit_params(shrink)
        yield project
