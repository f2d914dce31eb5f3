"""Where the stores live: the embedded defaults and the environment variables that override them.

| store           | variable               | default (relative to the project root)      |
|-----------------|------------------------|---------------------------------------------|
| project root    | `ML_ASSETS_ROOT`       | the current directory                       |
| Dagster home    | `DAGSTER_HOME`         | `.dagster_home` (set by the Makefile)       |
| MLflow tracking | `MLFLOW_TRACKING_URI`  | `sqlite:///<root>/.mlflow/mlflow.db`        |
| MLflow artifacts| `ML_ASSETS_MLFLOW_ARTIFACTS` | `<root>/.mlflow/artifacts` (new experiments only) |
| DVC remote      | `ML_ASSETS_DVC_REMOTE` | `<root>/.dvc_remote` (any DVC URL: s3://, gs://, ssh://, a folder) |
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


def resolve_locations(
    env: Mapping[str, str],
    *,
    root: str | None = None,
    mlflow_tracking_uri: str | None = None,
    dvc_remote: str | None = None,
) -> Locations:
    """Resolves each store: an explicit value first, then its environment variable, then the default.

    Args:
        env: The environment (pass `os.environ`).
        root: The project root, if set explicitly.
        mlflow_tracking_uri: The MLflow tracking URI, if set explicitly.
        dvc_remote: The DVC remote URL, if set explicitly.

    Returns:
        The locations, with local paths made absolute.
    """
    base = Path(root or env.get("ML_ASSETS_ROOT") or ".").resolve()
    uri = mlflow_tracking_uri or env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{base / '.mlflow' / 'mlflow.db'}"
    artifacts = env.get("ML_ASSETS_MLFLOW_ARTIFACTS")
    if artifacts is None and uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    remote = dvc_remote or env.get("ML_ASSETS_DVC_REMOTE") or str(base / ".dvc_remote")
    return Locations(root=base, mlflow_tracking_uri=uri, mlflow_artifact_root=artifacts, dvc_remote=remote)
