"""Where the stores live: the embedded defaults and the environment variables that override them.

| store           | variable               | default (relative to the project root)      |
|-----------------|------------------------|---------------------------------------------|
| project root    | `ML_ASSETS_ROOT`       | the current directory                       |
| Dagster home    | `DAGSTER_HOME`         | `.dagster_home` (set by the Makefile)       |
| MLflow tracking | `MLFLOW_TRACKING_URI`  | `sqlite:///<root>/.mlflow/mlflow.db`        |
| MLflow artifacts| `ML_ASSETS_MLFLOW_ARTIFACTS` | `<root>/.mlflow/artifacts` (new experiments only) |
| DVC remote      | `ML_ASSETS_DVC_REMOTE` | `<root>/.dvc_remote` (any DVC URL: s3://, gs://, ssh://, a folder) |
| S3 endpoint     | `ML_ASSETS_DVC_ENDPOINT_URL` | unset (AWS); any S3-compatible server (MinIO, moto) |

Credentials are never settings: DVC's S3 remote reads `AWS_ACCESS_KEY_ID` and
`AWS_SECRET_ACCESS_KEY` (or an instance role) from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Locations:
    """Resolved store locations."""

    root: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str | None
    dvc_remote: str
    dvc_endpoint_url: str | None = None


def resolve_locations(
    env: Mapping[str, str],
    *,
    root: str | None = None,
    mlflow_tracking_uri: str | None = None,
    dvc_remote: str | None = None,
    dvc_endpoint_url: str | None = None,
) -> Locations:
    """Resolves each store: an explicit value first, then its environment variable, then the default.

    Args:
        env: The environment (pass `os.environ`).
        root: The project root, if set explicitly.
        mlflow_tracking_uri: The MLflow tracking URI, if set explicitly.
        dvc_remote: The DVC remote URL, if set explicitly.
        dvc_endpoint_url: The S3 endpoint of the DVC remote, if set explicitly.

    Returns:
        The locations, with local paths made absolute.
    """
    base = Path(root or env.get("ML_ASSETS_ROOT") or ".").resolve()
    uri = mlflow_tracking_uri or env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{base / '.mlflow' / 'mlflow.db'}"
    artifacts = env.get("ML_ASSETS_MLFLOW_ARTIFACTS")
    if artifacts is None and uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    remote = dvc_remote or env.get("ML_ASSETS_DVC_REMOTE") or str(base / ".dvc_remote")
    endpoint = dvc_endpoint_url or env.get("ML_ASSETS_DVC_ENDPOINT_URL") or None
    return Locations(
        root=base,
        mlflow_tracking_uri=uri,
        mlflow_artifact_root=artifacts,
        dvc_remote=remote,
        dvc_endpoint_url=endpoint,
    )


class EndpointUnreachable(ConnectionError):
    """A server that a store points at does not accept connections; the message says what to start."""


def check_endpoint(url: str, *, variable: str, timeout: float = 3.0) -> None:
    """Fails fast, naming the endpoint and what to start, when an `http(s)://` server is down.

    Anything that is not an HTTP URL (a SQLite file, a folder) passes: there is nothing to reach.

    Args:
        url: The endpoint, e.g. `http://127.0.0.1:5000`.
        variable: The environment variable it came from, named in the error.
        timeout: Seconds to wait for the TCP connection.

    Raises:
        EndpointUnreachable: Nothing accepts connections at the URL's host and port.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return
    except OSError as error:
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        start = "start it with `make dev-scale`" if local else "start that server or fix the variable"
        raise EndpointUnreachable(f"{variable} {url} is unreachable ({error}): {start}") from error
