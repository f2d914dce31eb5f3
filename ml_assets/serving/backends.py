"""MLflow's own model server (`mlflow models serve`) as child processes, one per served registered version."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

INTERNAL_HOST = "127.0.0.1"


def log(message: str) -> None:
    """Prints one timestamped line of the serving log."""
    print(f"{dt.datetime.now():%H:%M:%S} [ml_assets.serving] {message}", flush=True)


def free_port(host: str = INTERNAL_HOST) -> int:
    """Returns a port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(eq=False)
class Backend:
    """One `mlflow models serve` child, pinned to one registered version."""

    version: str
    port: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        """The child's base URL."""
        return f"http://{INTERNAL_HOST}:{self.port}"

    def alive(self) -> bool:
        """Tells whether the child process is still running."""
        return self.process.poll() is None


def start_backend(model_name: str, version: str, *, tracking_uri: str, env: Mapping[str, str]) -> Backend:
    """Starts MLflow's model server on a spare internal port for `models:/<model_name>/<version>`.

    Pinning a version (rather than serving `@champion`) means a child never changes under a request
    and the proxy always knows which version answered.

    Args:
        model_name: The registered model.
        version: The version to serve.
        tracking_uri: The registry the `models:/` URI resolves against.
        env: The environment to start from.

    Returns:
        The child (not yet ready: the proxy waits for its `/ping`).
    """
    port = free_port()
    child_env = dict(env)
    # The project keeps runs and the registry in one store: an inherited MLFLOW_REGISTRY_URI must not
    # send the child to another registry than the one the alias was read from.
    child_env["MLFLOW_TRACKING_URI"] = child_env["MLFLOW_REGISTRY_URI"] = tracking_uri
    child_env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow starts `uvicorn` by name: make this interpreter's scripts findable without an activated venv.
    child_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), child_env.get("PATH", "")])
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model_name}/{version}"]
    command += ["--env-manager", "local", "--host", INTERNAL_HOST, "--port", str(port)]
    # Its own session: Ctrl-C in a terminal does not reach it half-way, and stopping the group reaches
    # the uvicorn process MLflow starts under it.
    process = subprocess.Popen(command, env=child_env, start_new_session=True)
    log(f"starting `{model_name}` v{version}: MLflow model server pid {process.pid} on internal port {port}")
    return Backend(version=version, port=port, process=process)


def stop_backend(backend: Backend, *, grace: float = 5.0) -> None:
    """Stops the child's whole process group: SIGTERM, then SIGKILL after `grace` seconds.

    Args:
        backend: The child.
        grace: Seconds between SIGTERM and SIGKILL.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(backend.process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        backend.process.wait(timeout=grace)
    # The leader may be gone while its uvicorn child still runs: the group gets SIGKILL either way.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(backend.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        backend.process.wait(timeout=grace)
