"""The registry helpers against a real `mlflow server` (proxied artifacts), not only the SQLite store.

A tracking server checks what the SQLite store accepts blindly (for example that a `models:/m-...`
source names its logged model), so registration is tested over HTTP too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.lib import tracking

pytestmark = pytest.mark.slow  # starts a real `mlflow server`


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and proxied artifacts; its URL."""
    base = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (base / "server.log").open("w")
    process = subprocess.Popen(
        [
            *(str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}"),
            *("--serve-artifacts", "--artifacts-destination", str(base / "artifacts")),
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (base / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def _tiny_model() -> tuple[object, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "z": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    return LogisticRegression().fit(frame, [0, 0, 0, 1, 1, 1]), frame


def test_register_version_and_aliases_on_a_tracking_server(mlflow_server: str, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    experiment_id = tracking.ensure_experiment(client, "server_test", artifact_root=None)
    model, frame = _tiny_model()
    logged = tracking.log_sklearn_model(
        tracking_uri=mlflow_server,
        experiment_id=experiment_id,
        run_name="tiny",
        model=model,
        params={"C": 1.0},
        metrics={"roc_auc": 1.0},
        tags={tracking.FINGERPRINT_TAG: "fp-1"},
        input_example=frame.head(2),
    )
    assert logged.model_uri.startswith("models:/m-")

    version = tracking.register_version(
        client,
        model_name="server_model",
        model_uri=logged.model_uri,
        run_id=logged.run_id,
        tags={tracking.FINGERPRINT_TAG: "fp-1"},
        description="first",
    )
    assert str(version.version) == "1"
    assert version.source == logged.model_uri
    assert tracking.find_version(client, "server_model", fingerprint="fp-1").version == version.version
    client.set_registered_model_alias("server_model", tracking.CHAMPION, "1")
    assert str(tracking.alias_version(client, "server_model", tracking.CHAMPION).version) == "1"

    # The artifacts went through the server (proxied): the alias loads with no direct store access.
    loaded = tracking.load_model(mlflow_server, "models:/server_model@champion")
    assert list(loaded.predict(frame)) == list(model.predict(frame))
