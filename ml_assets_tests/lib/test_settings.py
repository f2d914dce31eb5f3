"""Store locations from the environment, the S3 endpoint of the DVC remote, and the preflight of servers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ml_assets.lib.dvc_store import DvcStore
from ml_assets.lib.settings import EndpointUnreachable, check_endpoint, resolve_locations


def test_the_dvc_endpoint_comes_from_the_environment_unless_set_explicitly(tmp_path: Path):
    env = {"ML_ASSETS_DVC_REMOTE": "s3://bucket/dvc", "ML_ASSETS_DVC_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert resolve_locations(env, root=str(tmp_path)).dvc_endpoint_url == "http://127.0.0.1:9000"
    assert resolve_locations(env, root=str(tmp_path), dvc_endpoint_url="http://s3:1").dvc_endpoint_url == "http://s3:1"
    assert resolve_locations({}, root=str(tmp_path)).dvc_endpoint_url is None


def test_an_s3_remote_gets_its_endpointurl_in_the_untracked_local_config(tmp_path: Path):
    DvcStore(root=tmp_path, remote_url="s3://bucket/dvc", endpoint_url="http://127.0.0.1:9000").ensure_ready()
    local = (tmp_path / ".dvc" / "config.local").read_text()
    assert "url = s3://bucket/dvc" in local and "endpointurl = http://127.0.0.1:9000" in local
    DvcStore(root=tmp_path, remote_url=str(tmp_path / "remote")).ensure_ready()  # back to a folder: no endpoint
    assert "endpointurl" not in (tmp_path / ".dvc" / "config.local").read_text()
    assert "endpointurl" not in (tmp_path / ".dvc" / "config").read_text()


def test_a_server_that_is_down_is_named_with_what_to_start():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(
            EndpointUnreachable, match=rf"MLFLOW_TRACKING_URI http://127.0.0.1:{port} is unreachable .*make dev-scale"
        ):
            check_endpoint(f"http://127.0.0.1:{port}", variable="MLFLOW_TRACKING_URI")


def test_a_listening_server_or_a_local_store_passes():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        check_endpoint(f"http://127.0.0.1:{sock.getsockname()[1]}", variable="MLFLOW_TRACKING_URI")
    check_endpoint("sqlite:////tmp/mlflow.db", variable="MLFLOW_TRACKING_URI")  # nothing to reach
