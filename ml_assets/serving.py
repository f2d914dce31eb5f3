"""Serve the registry's champion over HTTP with MLflow's own model server, and follow the alias.

    python -m ml_assets.serving [--port 5001] [--poll-seconds 5]      # or: make serve PORT=5001

The model name comes from `params.yaml` (`registry.model_name`) and the registry from
`MLFLOW_TRACKING_URI` / `ML_ASSETS_ROOT`, resolved like every other entry point of the project.

How a promotion reaches clients without anyone restarting anything:

1. The public port is a small stdlib reverse proxy. Behind it runs one `mlflow models serve
   -m models:/<name>/<version> --env-manager local` child on a spare internal port, pinned to the
   version `@champion` resolved to when it started (pinning, rather than serving `@champion`
   itself, means the child never changes under a request and we always know what it serves).
2. Every `--poll-seconds` the supervisor reads the alias. When it moved, it starts a second child
   on another spare port with the new version, waits until that child's `/ping` answers, then
   swaps the proxy's upstream (one assignment under a lock). Requests already sent to the old
   child finish there; the old child is stopped once none is in flight.
3. Until the new child answers `/ping` every request is served by the old one, so clients see no
   refused connection and no error during a swap; a new version that fails to start is logged,
   the old one keeps serving, and the start is retried after a back-off. A child that dies is
   restarted on the same version. A deleted alias keeps the last champion in service.

Restarting in place on the same port would be simpler, but clients would get refused
connections for as long as MLflow takes to import and load the model (seconds), at every promotion.

Every proxied response carries `X-Model-Name` and `X-Model-Version`; `GET /champion` returns the
served version as JSON. MLflow's own routes (`/invocations`, `/ping`, `/health`, and `/version`,
which is the MLflow library's version) pass through unchanged. Before any champion exists the
proxy answers 503. SIGTERM and SIGINT stop the children and exit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

INTERNAL_HOST = "127.0.0.1"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def log(message: str) -> None:
    """Print one timestamped line of the supervisor's log."""
    print(f"{dt.datetime.now():%H:%M:%S} [ml_assets.serving] {message}", flush=True)


def free_port(host: str = INTERNAL_HOST) -> int:
    """Return a port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    """One `mlflow models serve` child, pinned to one registered version."""

    version: str
    port: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0

    @property
    def url(self) -> str:
        """The child's base URL."""
        return f"http://{INTERNAL_HOST}:{self.port}"

    def alive(self) -> bool:
        """Tell whether the child process is still running."""
        return self.process.poll() is None


def start_backend(model_name: str, version: str, *, tracking_uri: str, env: Mapping[str, str]) -> Backend:
    """Start MLflow's model server on a spare internal port for `models:/<model_name>/<version>`.

    Args:
        model_name: The registered model.
        version: The version to serve.
        tracking_uri: The registry the `models:/` URI resolves against.
        env: The environment to start from.

    Returns:
        The child (not yet ready: see `wait_ready`).
    """
    port = free_port()
    child_env = dict(env)
    child_env["MLFLOW_TRACKING_URI"] = tracking_uri
    child_env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow starts `uvicorn` by name: make this interpreter's scripts findable without an activated venv.
    child_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), child_env.get("PATH", "")])
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{model_name}/{version}",
        "--env-manager",
        "local",
        "--host",
        INTERNAL_HOST,
        "--port",
        str(port),
    ]
    # Its own session, so stopping it reaches the uvicorn process MLflow starts under it.
    process = subprocess.Popen(command, env=child_env, start_new_session=True)
    log(f"starting `{model_name}` v{version}: MLflow model server pid {process.pid} on internal port {port}")
    return Backend(version=version, port=port, process=process)


def wait_ready(backend: Backend, *, timeout: float, stop: threading.Event) -> bool:
    """Wait until the child answers `GET /ping` with 200.

    Args:
        backend: The child.
        timeout: Seconds to wait at most.
        stop: Set when the supervisor is shutting down; waiting ends early.

    Returns:
        True once it answers; False when it exited, the time ran out, or `stop` was set.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if not backend.alive():
            return False
        try:
            with urllib.request.urlopen(f"{backend.url}/ping", timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, http.client.HTTPException):
            pass
        stop.wait(0.25)
    return False


def stop_backend(backend: Backend, *, grace: float = 10.0) -> None:
    """Stop the child's whole process group: SIGTERM, then SIGKILL after `grace` seconds."""
    if backend.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(backend.process.pid, signal.SIGTERM)
        try:
            backend.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(backend.process.pid, signal.SIGKILL)
            backend.process.wait()
    else:  # the leader is gone; its uvicorn may not be
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(backend.process.pid, signal.SIGKILL)


class Supervisor:
    """Keeps one ready MLflow server on the champion's version and tells the proxy where it is."""

    def __init__(
        self,
        *,
        model_name: str,
        tracking_uri: str,
        env: Mapping[str, str],
        poll_seconds: float,
        startup_timeout: float,
        retry_seconds: float = 60.0,
        drain_seconds: float = 90.0,
    ) -> None:
        self.model_name = model_name
        self.tracking_uri = tracking_uri
        self.env = dict(env)
        self.poll_seconds = poll_seconds
        self.startup_timeout = startup_timeout
        self.retry_seconds = retry_seconds
        self.drain_seconds = drain_seconds
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._active: Backend | None = None
        self._since: str | None = None
        self._failed: dict[str, float] = {}
        self._client: Any = None
        self._alias_missing_logged = False

    # --- used by the proxy threads

    def acquire(self) -> Backend | None:
        """Return the active child with one more request in flight, or None when nothing is served."""
        with self._lock:
            backend = self._active
            if backend is not None:
                backend.in_flight += 1
            return backend

    def release(self, backend: Backend) -> None:
        """Mark one request to `backend` as finished."""
        with self._lock:
            backend.in_flight -= 1

    def status(self) -> dict[str, Any]:
        """Describe what is served (the body of `GET /champion`)."""
        with self._lock:
            backend, since = self._active, self._since
        return {
            "model": self.model_name,
            "alias": "champion",
            "version": backend.version if backend else None,
            "model_uri": f"models:/{self.model_name}/{backend.version}" if backend else None,
            "serving_since": since,
        }

    # --- the supervisor loop (main thread)

    def champion_version(self) -> str | None:
        """Read the version `@champion` points at; None when there is none or the registry is unreachable."""
        from ml_assets.lib import tracking

        try:
            if self._client is None:
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            version = tracking.alias_version(self._client, self.model_name, tracking.CHAMPION)
        except Exception as error:  # a locked SQLite file or a server restart must not stop serving
            log(f"could not read `{self.model_name}@champion` from {self.tracking_uri}: {error}; retrying")
            return None
        return str(version.version) if version is not None else None

    def _swap(self, backend: Backend) -> Backend | None:
        with self._lock:
            old, self._active = self._active, backend
            self._since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return old

    def _retire(self, old: Backend) -> None:
        deadline = time.monotonic() + self.drain_seconds
        while old.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_backend(old)
        log(f"stopped v{old.version} (pid {old.process.pid})")

    def _bring_up(self, version: str) -> None:
        retry_at = self._failed.get(version)
        if retry_at is not None and time.monotonic() < retry_at:
            return
        started = time.monotonic()
        backend = start_backend(self.model_name, version, tracking_uri=self.tracking_uri, env=self.env)
        if not wait_ready(backend, timeout=self.startup_timeout, stop=self.stop):
            code = backend.process.poll()
            stop_backend(backend)
            if self.stop.is_set():
                return
            self._failed[version] = time.monotonic() + self.retry_seconds
            current = self._active.version if self._active else None
            log(
                f"v{version} did not come up: "
                + (
                    f"its server exited with code {code}"
                    if code is not None
                    else f"no /ping answer in {self.startup_timeout:.0f} s"
                )
                + "; "
                + (f"v{current} keeps serving" if current else "nothing is served")
                + f"; retrying in {self.retry_seconds:.0f} s"
            )
            return
        self._failed.pop(version, None)
        old = self._swap(backend)
        took = time.monotonic() - started
        if old is None or old.version == version:
            log(f"serving `{self.model_name}` v{version} (ready in {took:.1f} s)")
        else:
            log(f"serving `{self.model_name}` v{version}, was v{old.version} (new server ready in {took:.1f} s)")
        if old is not None:
            threading.Thread(target=self._retire, args=(old,), daemon=True).start()

    def tick(self) -> None:
        """Check the alias and the child once; start, swap or restart as needed."""
        version = self.champion_version()
        active = self._active
        if version is None:
            if active is not None and not self._alias_missing_logged:
                log(f"`{self.model_name}@champion` cannot be read or is gone; v{active.version} keeps serving")
                self._alias_missing_logged = True
            elif active is None and not self._alias_missing_logged:
                log(f"no `{self.model_name}@champion` in {self.tracking_uri} yet; answering 503 and polling")
                self._alias_missing_logged = True
            if active is None or active.alive():
                return
            version = active.version  # keep the last champion alive
        else:
            self._alias_missing_logged = False
        if active is None or active.version != version:
            self._bring_up(version)
        elif not active.alive():
            log(f"the server for v{version} exited (code {active.process.returncode}); restarting it")
            self._bring_up(version)

    def run(self) -> None:
        """Poll until `stop` is set, then stop every child."""
        try:
            while not self.stop.is_set():
                self.tick()
                self.stop.wait(self.poll_seconds)
        finally:
            with self._lock:
                active, self._active = self._active, None
            if active is not None:
                stop_backend(active)
                log(f"stopped v{active.version} (pid {active.process.pid})")


class ProxyHandler(BaseHTTPRequestHandler):
    """Forwards each request to the active child and stamps the served version on the response."""

    protocol_version = "HTTP/1.1"
    server_version = "ml_assets-serving"
    supervisor: Supervisor  # set on the subclass `serve` builds
    request_timeout: float = 120.0

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log quiet: MLflow's server logs every request already."""

    def _reply(self, status: int, body: dict[str, Any], *, extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._reply(411, {"error": "send a Content-Length; chunked request bodies are not supported"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] == "/champion":
            self._reply(200, self.supervisor.status())
            return
        backend = self.supervisor.acquire()
        if backend is None:
            self._reply(503, {"error": f"no champion of `{self.supervisor.model_name}` is being served yet"})
            return
        stamp = {"X-Model-Name": self.supervisor.model_name, "X-Model-Version": backend.version}
        connection = http.client.HTTPConnection(INTERNAL_HOST, backend.port, timeout=self.request_timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self._reply(502, {"error": f"model server for v{backend.version} failed: {error}"}, extra=stamp)
            return
        finally:
            connection.close()
            self.supervisor.release(backend)
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() not in ("server", "date"):
                self.send_header(key, value)
        for key, value in stamp.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward


def resolve_target(env: Mapping[str, str]) -> tuple[str, str]:
    """Return the registered model name (from `params.yaml`) and the tracking URI, as the project resolves them.

    Args:
        env: The environment (`ML_ASSETS_ROOT`, `MLFLOW_TRACKING_URI`).

    Returns:
        The model name and the tracking URI.
    """
    from ml_assets.lib.config import load_params
    from ml_assets.lib.settings import resolve_locations

    locations = resolve_locations(env)
    return load_params(locations.root / "params.yaml").registry.model_name, locations.mlflow_tracking_uri


def serve(*, host: str, port: int, poll_seconds: float, startup_timeout: float, env: Mapping[str, str]) -> None:
    """Run the proxy on `host:port` and the supervisor until SIGTERM or SIGINT.

    Args:
        host: The interface the proxy listens on.
        port: The public port.
        poll_seconds: How often the `champion` alias is read.
        startup_timeout: How long a new MLflow server may take to answer `/ping`.
        env: The environment the project's locations are resolved from and the children inherit.
    """
    model_name, tracking_uri = resolve_target(env)
    supervisor = Supervisor(
        model_name=model_name,
        tracking_uri=tracking_uri,
        env=env,
        poll_seconds=poll_seconds,
        startup_timeout=startup_timeout,
    )
    handler = type("Handler", (ProxyHandler,), {"supervisor": supervisor})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise SystemExit(f"ml_assets.serving: cannot listen on {host}:{port}: {error}; pick another --port") from error
    server.daemon_threads = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log(f"{signal.Signals(signum).name}: stopping")
        supervisor.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, name="proxy", daemon=True).start()
    log(f"`{model_name}@champion` from {tracking_uri} on http://{host}:{port} (GET /champion for the version)")
    try:
        supervisor.run()
    finally:
        server.shutdown()
        server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.serving", description="Serve the champion with MLflow and follow the alias."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="public port (default: 5001)")
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="how often the alias is read (default: 5)")
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds a new MLflow server may take (default: 300)"
    )
    args = parser.parse_args(argv)
    serve(
        host=args.host,
        port=args.port,
        poll_seconds=args.poll_seconds,
        startup_timeout=args.startup_timeout,
        env=os.environ,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
