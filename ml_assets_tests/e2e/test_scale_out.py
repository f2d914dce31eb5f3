"""The scale-out profile (`make dev-scale`) on loopback: the same graph on Postgres, an MLflow server,
Celery workers and an S3 DVC remote, brought up once for this module.

Needs Debian's postgresql and redis-server (`make scale-deps`; `.ci/run` installs them).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from ml_assets.lib.demo_data import write_demo_batches
from ml_assets_tests.conftest import REPO, _new_project_files
from ml_assets_tests.e2e.harness import Profile, devserver, free_ports, launch_job, wait_for

# The module brings the whole profile up once: its tests share one pytest-xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("scale_out")]

MODEL = "churn_classifier"


def _missing_servers() -> str | None:
    from ml_assets.devserver import DevServerError, postgres_bin

    try:
        postgres_bin()
    except DevServerError:
        return "PostgreSQL is not installed (make scale-deps installs Debian's postgresql and redis-server)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (make scale-deps installs Debian's redis-server)"
    return None


@dataclass
class ScaleOut:
    """The running profile, its project root and a Dagster instance on its Postgres."""

    profile: Profile
    root: Path
    instance: dg.DagsterInstance

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.profile.env}

    def training_runs(self, status: dg.DagsterRunStatus | None = None) -> list[dg.DagsterRun]:
        runs = self.instance.get_runs(dg.RunsFilter(job_name="training_job"))
        return [r for r in runs if status is None or r.status == status]

    def events(self, run_id: str, kind: dg.DagsterEventType) -> list[dg.EventLogEntry]:
        return list(self.instance.all_logs(run_id, of_type=kind))

    def story(self, run_id: str) -> str:
        """The run's failures and engine events, oldest first: what an assertion on the run should show."""
        lines = []
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.is_failure or event.is_run_failure or event.is_engine_event or event.is_step_up_for_retry:
                lines.append(f"{event.event_type_value} {event.step_key or ''}: {event.message or entry.user_message}")
                error = getattr(event.event_specific_data, "error", None)
                if error is not None:
                    lines.append(error.to_string()[-2500:])
        return "\n".join(lines)[-6000:]

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        uri = self.profile.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def scale_out(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[ScaleOut]:
    reason = _missing_servers()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("scale_out")
    _new_project_files(base, mlflow_template)
    root = base / "project"
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["automation"] = {"landing_interval_seconds": 3, "retrain_interval_seconds": 3}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    write_demo_batches(
        root / "data" / "landing", batches=2, rows_per_batch=500, seed=11, start_date=dt.date(2026, 12, 1)
    )
    # Postgres runs as the `postgres` user when the tests run as root: its folder must be reachable
    # by that user, which pytest's private temp folders are not.
    state = Path(tempfile.mkdtemp(prefix="ml_assets_scale_"))
    state.chmod(0o755)
    ports = free_ports("dagster", "mlflow", "docs", "grpc", "postgres", "redis", "s3")
    command = [sys.executable, "-m", "ml_assets.devserver", "scale", "--root", str(root), "--state", str(state / "s")]
    command += [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    try:
        with devserver(command, state=state / "s", env=dict(os.environ), cwd=root) as profile:
            with pytest.MonkeyPatch.context() as patch:  # the instance's config reads these when it opens
                for name in (
                    "DAGSTER_PG_HOST",
                    "DAGSTER_PG_PORT",
                    "DAGSTER_PG_USER",
                    "DAGSTER_PG_PASSWORD",
                    "DAGSTER_PG_DB",
                ):
                    patch.setenv(name, profile.env[name])
                instance = dg.DagsterInstance.from_config(profile.env["DAGSTER_HOME"])
            with instance:
                yield ScaleOut(profile=profile, root=root, instance=instance)
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def first_champion(scale_out: ScaleOut) -> dg.DagsterRun:
    """The first training run the sensors start once the landed batches are validated."""
    finished = wait_for(
        "the sensors' first training run",
        lambda: [r for r in scale_out.training_runs() if r.is_finished],
        timeout=480,
    )
    run = finished[0]
    log = Path(scale_out.profile.env["DAGSTER_HOME"]).parent / "logs" / "daemon.log"
    assert run.is_success, log.read_text()[-3000:] if log.is_file() else run.status
    return run


def test_sensors_train_and_promote_on_postgres_celery_mlflow_server_and_s3(
    scale_out: ScaleOut, first_champion: dg.DagsterRun
):
    import boto3
    import psycopg2

    env = scale_out.profile.env
    # 1. Dagster's runs are in Postgres (and no SQLite run storage was made).
    with (
        psycopg2.connect(
            host=env["DAGSTER_PG_HOST"],
            port=env["DAGSTER_PG_PORT"],
            user=env["DAGSTER_PG_USER"],
            password=env["DAGSTER_PG_PASSWORD"],
            dbname=env["DAGSTER_PG_DB"],
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pipeline_name, status FROM runs")
        rows = cursor.fetchall()
    assert ("training_job", "SUCCESS") in rows
    assert sum(1 for name, status in rows if name == "ingest_batch_job" and status == "SUCCESS") == 2
    assert not (Path(env["DAGSTER_HOME"]) / "history" / "runs.db").exists()

    # 2. Candidate steps ran in Celery worker processes, not in the run's process.
    run_id = first_champion.run_id
    [run_start] = scale_out.events(run_id, dg.DagsterEventType.RUN_START)
    run_pid = run_start.dagster_event.pid  # type: ignore[union-attr]
    starts = {
        e.step_key: e.dagster_event.pid  # type: ignore[union-attr]
        for e in scale_out.events(run_id, dg.DagsterEventType.STEP_START)
        if e.step_key and e.step_key.startswith("candidate_")
    }
    assert len(starts) == 3 and run_pid not in starts.values(), (run_pid, starts)
    hosts = {
        e.step_key: e.dagster_event.engine_event_data.metadata["Celery worker"].value  # type: ignore[union-attr]
        for e in scale_out.events(run_id, dg.DagsterEventType.ENGINE_EVENT)
        if "in celery worker" in (e.message or "") and e.step_key in starts
    }
    assert set(hosts) == set(starts) and all(h.startswith(("worker1@", "worker2@")) for h in hosts.values()), hosts
    worker_groups = {scale_out.profile.pids[f"celery-worker-{i}"] for i in (1, 2)}
    for pid in starts.values():
        if Path(f"/proc/{pid}").exists():  # the pool process that ran it lives on in its worker
            assert os.getpgid(pid) in worker_groups

    # 3. The champion alias is on the MLflow tracking server.
    champion = scale_out.mlflow().get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1" and champion.tags["dagster_run_id"] == run_id

    # 4. The data is in the S3 remote, and `make reproduce` works from it with no local DVC cache.
    s3 = boto3.client(
        "s3",
        endpoint_url=env["ML_ASSETS_DVC_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    md5 = champion.tags["dvc.snapshot_md5"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ml-assets", Prefix="dvc/").get("Contents", [])}
    assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys
    shutil.rmtree(scale_out.root / ".dvc" / "cache")
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "reproduce", "VERSION=1"],
        env=scale_out.env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "metrics match exactly" in done.stdout


def test_a_worker_killed_mid_step_is_retried_and_the_champion_is_never_half_promoted(
    scale_out: ScaleOut, first_champion: dg.DagsterRun
):
    # More trees: a new fingerprint (so the candidate really trains) and a step long enough to kill.
    params = scale_out.root / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["training"]["candidates"]["random_forest"]["params"]["n_estimators"] = 300
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_id = launch_job(scale_out.profile.urls["webserver"], "training_job")

    def started() -> int | None:
        events = [
            e
            for e in scale_out.events(run_id, dg.DagsterEventType.STEP_START)
            if e.step_key == "candidate_random_forest"
        ]
        return events[0].dagster_event.pid if events else None  # type: ignore[union-attr]

    pid = wait_for("candidate_random_forest to start", started, timeout=300, every=0.2)
    os.kill(pid, signal.SIGKILL)  # the worker process running the step dies mid-step

    def finished() -> dg.DagsterRun | None:
        run = scale_out.instance.get_run_by_id(run_id)
        return run if run is not None and run.is_finished else None

    run = wait_for("the run to finish", finished, timeout=300)
    rf = [
        e.dagster_event.event_type_value  # type: ignore[union-attr]
        for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
        for e in scale_out.events(run_id, kind)
        if e.step_key == "candidate_random_forest"
    ]
    # The broker handed the step to a live worker, which ran it again to the end.
    assert rf.count("STEP_START") >= 2 and rf.count("STEP_SUCCESS") == 1, rf
    failed = [
        e
        for e in scale_out.events(run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if not e.dagster_event.event_specific_data.passed  # type: ignore[union-attr]
    ]
    assert run.is_success or failed, scale_out.story(run_id)  # only a model gate may stop it, never the lost worker

    client = scale_out.mlflow()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    # Whole, never half: the champion is the version that passed every check, the same as the challenger.
    assert champion.version == challenger.version
    assert champion.tags["dagster_run_id"] in (run_id, first_champion.run_id)
