"""Reading the registry: "not found" and "could not ask" are different answers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ml_assets.lib import tracking as T


class _Unavailable(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"maintenance")

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch):
    """An MLflow endpoint that answers every request with HTTP 503 (MLflow's own retries cut to one)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    server = HTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_registry_that_answers_503_is_never_read_as_no_champion(down: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=down, registry_uri=down)
    with pytest.raises(T.RegistryUnavailable, match=rf"at `{down}` could not read the aliases of `m`.*nothing was changed"):
        T.read_aliases(client, "m")
    with pytest.raises(T.RegistryUnavailable):
        T.load_champion(client, down, "m")
    with pytest.raises(T.RegistryUnavailable):
        T.find_version(client, "m", fingerprint="abc")


def test_a_missing_model_is_not_found(tmp_path, mlflow_template):
    import shutil

    from mlflow import MlflowClient

    shutil.copy(mlflow_template, tmp_path / "db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'db'}", registry_uri=f"sqlite:///{tmp_path / 'db'}")
    assert T.read_aliases(client, "m") == {}
    assert T.load_champion(client, "unused", "m") == T.LoadedChampion(None)
    assert T.find_version(client, "m", fingerprint="abc") is None
