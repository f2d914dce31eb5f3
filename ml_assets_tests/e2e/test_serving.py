"""`python -m ml_assets.serving`: MLflow's model server answers for the champion and follows a promotion."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import tracking
from ml_assets_tests.conftest import REPO, Project
from ml_assets_tests.defs.test_graph import MODEL

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 120.0
SWAP_TIMEOUT = 120.0


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@dataclass
class Answer:
    status: int
    version: str | None
    body: Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, payload: dict[str, Any] | None = None) -> Answer:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers.get("X-Model-Version"), json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("X-Model-Version"), error.read().decode())


def children_of(tracking_uri: str) -> list[int]:
    """Pids of processes started with this project's tracking URI (the supervisor and its MLflow servers)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"MLFLOW_TRACKING_URI={tracking_uri}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture
def served(trained: Project, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    env = {
        **os.environ,
        "ML_ASSETS_ROOT": str(trained.root),
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
        "ML_ASSETS_DVC_REMOTE": str(trained.dvc_remote),
    }
    log = tmp_path / "serving.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ml_assets.serving", "--port", str(port), "--poll-seconds", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Served(url=f"http://127.0.0.1:{port}", process=process, log=log, started=time.monotonic())
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in children_of(trained.tracking_uri):  # only what this test started: its own temp store
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for_answer(served: Served, url: str, payload: dict[str, Any], *, want: str, timeout: float) -> list[Answer]:
    """Posts `payload` every 0.2 s until the answer comes from version `want`; returns every answer seen."""
    deadline = time.monotonic() + timeout
    seen: list[Answer] = []
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"the server exited with {served.process.returncode}:\n{served.tail()}")
        try:
            answer = call(url, payload)
        except OSError:  # not listening yet
            answer = None
        if answer is not None:
            seen.append(answer)
            if answer.status == 200 and answer.version == want:
                return seen
        time.sleep(0.2)
    raise AssertionError(f"no answer from v{want} within {timeout:.0f} s; last {seen[-1:]}\n{served.tail()}")


def log_second_model(project: Project, features: list[str]) -> tuple[str, str, Any]:
    """Logs a deliberately different model (a strongly regularized logistic regression behind v1's preprocessing)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    client = project.mlflow_client()
    champion = tracking.load_model(project.tracking_uri, f"models:/{MODEL}/1")
    snapshot = pd.read_parquet(project.root / "data" / "snapshot" / "training_snapshot.parquet")
    model = Pipeline([("preprocess", champion.named_steps["preprocess"]), ("model", LogisticRegression(C=0.001))])
    model.named_steps["model"].fit(model.named_steps["preprocess"].transform(snapshot[features]), snapshot["churned"])
    experiment = tracking.ensure_experiment(client, "serving_test", artifact_root=None)
    logged = tracking.log_sklearn_model(
        tracking_uri=project.tracking_uri,
        experiment_id=experiment,
        run_name="second",
        model=model,
        params={},
        metrics={},
        tags={},
        input_example=snapshot[features].head(5),
    )
    return logged.model_uri, logged.run_id, model


def test_the_champion_is_served_and_a_promotion_is_followed_without_a_restart(
    trained: Project,
    served: Served,
):
    champion = tracking.load_model(trained.tracking_uri, f"models:/{MODEL}/1")
    features = [str(c) for c in champion.feature_names_in_]
    rows = pd.read_csv(next(iter(sorted(trained.landing.iterdir()))))[features].head(5)
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    invocations = f"{served.url}/invocations"

    [*_, first] = wait_for_answer(served, invocations, payload, want="1", timeout=STARTUP_TIMEOUT)
    startup = time.monotonic() - served.started
    v1_proba = np.asarray(first.body["predictions"])
    assert v1_proba.shape == (5, 2)
    assert np.allclose(v1_proba, champion.predict_proba(rows), atol=1e-9)
    status = call(f"{served.url}/champion")
    assert status.status == 200 and status.body["version"] == "1" and status.body["model"] == MODEL

    client = trained.mlflow_client()
    model_uri, run_id, second = log_second_model(trained, features)
    v2 = tracking.register_version(
        client, model_name=MODEL, model_uri=model_uri, run_id=run_id, tags={}, description="serving test"
    )
    promoted = time.monotonic()
    assert tracking.move_alias(client, MODEL, tracking.CHAMPION, str(v2.version)) == "1"

    seen = wait_for_answer(served, invocations, payload, want=str(v2.version), timeout=SWAP_TIMEOUT)
    swap = time.monotonic() - promoted
    # the old version answered every request until the new one took over: no error, no refused connection
    assert [a.status for a in seen] == [200] * len(seen), [(a.status, a.body) for a in seen if a.status != 200]
    assert {a.version for a in seen} <= {"1", str(v2.version)}
    v2_proba = np.asarray(seen[-1].body["predictions"])
    assert np.allclose(v2_proba, second.predict_proba(rows), atol=1e-9)
    assert not np.allclose(v2_proba, v1_proba, atol=1e-3)  # really another model
    assert call(f"{served.url}/champion").body["version"] == str(v2.version)
    print(f"\nfirst answer {startup:.1f} s after start; v{v2.version} answered {swap:.1f} s after the promotion")

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0, served.tail()
    deadline = time.monotonic() + 15
    while children_of(trained.tracking_uri) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert children_of(trained.tracking_uri) == [], served.tail()  # no MLflow server left behind
    assert "serving `churn_classifier` v1" in served.log.read_text()
