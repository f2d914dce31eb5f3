"""`make dev` and `make dev-scale`: start every server of a profile on 127.0.0.1, say where, stop them all.

    python -m ml_assets.devserver embedded [--dagster-port 3000 ...]      # make dev
    python -m ml_assets.devserver scale [--state .scale] [--detach]       # make dev-scale
    python -m ml_assets.devserver stop [--state .scale]                   # make stop-scale

Both profiles run Dagster as it is deployed: a gRPC code server (`dagster code-server start`, so
"Reload" in the UI re-imports the code), the webserver and the daemon as separate processes that
find the code server through `deploy/workspace.yaml`. `embedded` adds the MLflow UI on the local
SQLite store and a static server for the Great Expectations Data Docs. `scale` adds PostgreSQL (a
cluster in the state folder, started without systemd), Redis, an S3 server (moto), `mlflow server`
on Postgres with proxied artifacts, and Celery workers; only environment variables differ.

Ctrl-C (SIGINT to the foreground process group), SIGTERM or `stop` end everything within
`STOP_GRACE` + 2 seconds: each service runs in its own process group, which gets its stop signal,
then SIGKILL if it is still there after the grace period, grandchildren (run workers, Celery pool
processes, uvicorn workers) included. Every child carries `ML_ASSETS_DEVSERVER=<state folder>` in
its environment, so a test can prove that nothing outlived the supervisor.

We keep this small supervisor instead of honcho or supervisord: honcho (2.0) escalates to SIGKILL
only after one child has exited (a group that ignores SIGTERM keeps it waiting forever, which is
the bug this module fixes), starts everything at once (MLflow must wait for Postgres, the webserver
for the code server) and rewrites `PORT`; supervisord stops services one priority at a time and
needs its own daemon and config language. Neither knows how to initialise a Postgres cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKER = "ML_ASSETS_DEVSERVER"
STOP_GRACE = 6.0
"""Seconds a service gets to stop after its stop signal before its whole process group is killed."""
START_TIMEOUT = 180.0
PG_USER = "ml_assets"
S3_BUCKET = "ml-assets"
DEFAULT_PORTS = {
    "dagster": 3000,
    "mlflow": 5000,
    "docs": 3002,
    "grpc": 4266,
    "postgres": 5433,
    "redis": 6380,
    "s3": 9000,
}
"""Each can be set with `--<name>-port` or `ML_ASSETS_<NAME>_PORT`."""


class DevServerError(RuntimeError):
    """A profile could not start; the message names the service and what to do."""


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived."""


@dataclass
class Service:
    """One long-running process of a profile."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    ready: Callable[[], bool] | None = None
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    cwd: Path | None = None


# -- probes ------------------------------------------------------------------------------------------------------


def port_open(port: int) -> Callable[[], bool]:
    """A probe: something accepts TCP connections on 127.0.0.1:`port`."""

    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return probe


def http_ok(url: str) -> Callable[[], bool]:
    """A probe: `url` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    return probe


# -- the supervisor ----------------------------------------------------------------------------------------------


class Supervisor:
    """Starts services in their own process groups and stops them all, by pid, within a deadline."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.logs = state / "logs"
        self.pids = state / "pids"
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.services: dict[str, Service] = {}

    def start(self, service: Service, base_env: Mapping[str, str]) -> None:
        """Starts one service, its output in `logs/<name>.log`, its pid in `pids/<name>.pid`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        env = {**base_env, **service.env, MARKER: str(self.state)}
        with (self.logs / f"{service.name}.log").open("ab") as log:
            process = subprocess.Popen(
                service.command,
                env=env,
                cwd=service.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one signal reaches its children too
                user=service.user,
            )
        (self.pids / f"{service.name}.pid").write_text(str(process.pid))
        self.running[service.name] = process
        self.services[service.name] = service

    def wait_ready(self, names: Sequence[str], *, timeout: float = START_TIMEOUT) -> None:
        """Waits until each named service's probe passes; fails if one exits or the time runs out."""
        deadline = time.monotonic() + timeout
        pending = [name for name in names if self.services[name].ready is not None]
        while pending:
            self.check_alive()
            pending = [name for name in pending if not self.services[name].ready()]  # type: ignore[misc]
            if pending and time.monotonic() > deadline:
                raise DevServerError(
                    f"{', '.join(pending)} did not answer within {timeout:.0f} s; {self.hint(pending[0])}"
                )
            if pending:
                time.sleep(0.3)

    def check_alive(self) -> None:
        """Fails naming the first service that exited."""
        for name, process in self.running.items():
            if process.poll() is not None:
                raise DevServerError(f"{name} exited with code {process.returncode}; {self.hint(name)}")

    def hint(self, name: str) -> str:
        """The last lines of a service's log, to show with an error."""
        log = self.logs / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        return f"its log {log} ends with:\n    " + "\n    ".join(tail)

    def stop_all(self) -> None:
        """Stop signal to every group, SIGKILL to the groups still alive after `STOP_GRACE` seconds."""
        for name, process in self.running.items():
            if process.poll() is None:
                signal_group(process.pid, self.services[name].stop_signal)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(group_alive(p.pid) for p in self.running.values()):
            time.sleep(0.1)
        for name, process in self.running.items():
            if group_alive(process.pid):
                print(f"  {name} did not stop within {STOP_GRACE:.0f} s: killed", flush=True)
                signal_group(process.pid, signal.SIGKILL)
        for name, process in self.running.items():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)


def signal_group(pgid: int, signum: int) -> None:
    """Sends `signum` to a process group, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies count as gone)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def marked_processes(state: Path) -> list[int]:
    """Pids of live processes whose environment carries this state folder's marker."""
    needle = f"{MARKER}={state}".encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes() + b"\0":
                stat = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] != "Z":
                    found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


# -- profiles ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What the command line says."""

    root: Path
    state: Path
    ports: dict[str, int]
    workers: int


def tool(name: str) -> str:
    """A console script of this environment (dagster, mlflow, ...)."""
    path = BIN / name
    if not path.exists():
        raise DevServerError(f"`{name}` is not installed in {BIN}; run `make install`")
    return str(path)


def dagster_services(options: Options, workspace: Path) -> list[Service]:
    """The code server, the webserver and the daemon, as a deployment runs them."""
    ports = options.ports
    return [
        Service(
            "code-server",
            [
                *(tool("dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(ports["grpc"])),
                *("-m", "ml_assets.definitions", "--location-name", "ml_assets"),
            ],
            ready=port_open(ports["grpc"]),
            cwd=options.root,
        ),
        Service(
            "webserver",
            [tool("dagster-webserver"), "-h", "127.0.0.1", "-p", str(ports["dagster"]), "-w", str(workspace)],
            url=f"http://127.0.0.1:{ports['dagster']}",
            ready=http_ok(f"http://127.0.0.1:{ports['dagster']}/server_info"),
            cwd=options.root,
        ),
        Service("daemon", [tool("dagster-daemon"), "run", "-w", str(workspace)], cwd=options.root),
    ]


def docs_service(options: Options) -> Service:
    """A static HTTP server for the Great Expectations Data Docs site."""
    site = options.root / "gx" / "uncommitted" / "data_docs" / "local_site"
    site.mkdir(parents=True, exist_ok=True)
    port = options.ports["docs"]
    return Service(
        "data-docs",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site), str(port)],
        url=f"http://127.0.0.1:{port}/",
        ready=port_open(port),
    )


def common_env(options: Options) -> dict[str, str]:
    """What every process of both profiles sees."""
    ports = options.ports
    path = os.environ.get("PATH", "")
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{path}",  # dagster-celery runs `celery` from PATH
        "ML_ASSETS_ROOT": str(options.root),
        "ML_ASSETS_GRPC_PORT": str(ports["grpc"]),
        "ML_ASSETS_DATA_DOCS_URL": f"http://127.0.0.1:{ports['docs']}/",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }


def run_embedded(supervisor: Supervisor, options: Options) -> dict[str, str]:
    """`make dev`: Dagster on SQLite, the MLflow UI on the local store, the Data Docs."""
    env = common_env(options)
    home = Path(env.get("DAGSTER_HOME") or options.root / ".dagster_home")
    env["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").is_file():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{options.root / '.mlflow' / 'mlflow.db'}")
    prepare(env, options)
    services = [docs_service(options)]
    uri, port = env["MLFLOW_TRACKING_URI"], options.ports["mlflow"]
    if not uri.startswith(("http://", "https://")):  # a server elsewhere has its own UI
        services.append(
            Service(
                "mlflow-ui",
                [
                    *(tool("mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port)),
                    *("--workers", "1", "--backend-store-uri", uri),
                ],
                url=f"http://127.0.0.1:{port}",
                ready=http_ok(f"http://127.0.0.1:{port}/health"),
            )
        )
    start_dagster_with(supervisor, env, services, options)
    return env


def run_scale(supervisor: Supervisor, options: Options) -> dict[str, str]:
    """`make dev-scale`: Postgres, Redis, S3, the MLflow server, Celery workers and Dagster."""
    ports, state = options.ports, options.state
    password = scale_password(state)
    pg = f"127.0.0.1:{ports['postgres']}"
    env = {
        **common_env(options),
        "DAGSTER_HOME": str(state / "dagster_home"),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(ports["postgres"]),
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": password,
        "DAGSTER_PG_DB": "dagster",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        "ML_ASSETS_EXECUTOR": "celery",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{ports['redis']}/1",
        "ML_ASSETS_DVC_REMOTE": f"s3://{S3_BUCKET}/dvc",
        "ML_ASSETS_DVC_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        # moto accepts any key; a real bucket takes real keys (or an instance role) from the environment.
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "ml-assets-local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "ml-assets-local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    env.pop("ML_ASSETS_MLFLOW_ARTIFACTS", None)  # the server stores artifacts (proxied)
    home = state / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_file():
        shutil.copy(REPO / "deploy" / "scale" / "dagster.yaml", home / "dagster.yaml")
    write_env_file(state, env)

    stores = [postgres_service(options, password), redis_service(options), s3_service(options)]
    start_in_order(supervisor, env, stores)
    ensure_databases(ports["postgres"], password, ["dagster", "mlflow"])
    ensure_bucket(env)
    prepare(env, options)
    mlflow = Service(
        "mlflow-server",
        [tool("mlflow"), "server", "--host", "127.0.0.1", "--port", str(ports["mlflow"]), "--workers", "1"],
        env={
            # In the environment, not on the command line, so `ps` shows no password.
            "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://{PG_USER}:{password}@{pg}/mlflow",
            "MLFLOW_SERVE_ARTIFACTS": "true",
            "MLFLOW_ARTIFACTS_DESTINATION": str(state / "mlflow_artifacts"),
        },
        url=env["MLFLOW_TRACKING_URI"],
        ready=http_ok(f"{env['MLFLOW_TRACKING_URI']}/health"),
    )
    workers = [
        Service(
            f"celery-worker-{i}",
            [tool("dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
            + ["-y", str(REPO / "deploy" / "scale" / "celery.yaml"), "-n", f"worker{i}", "-l", "WARNING"]
            + [
                arg
                for module in ("ml_assets.definitions", "mlflow.sklearn", "sklearn.ensemble")
                for arg in ("-i", module)
            ]
            + ["--", "--concurrency", "1"],
            cwd=options.root,
        )
        for i in range(1, options.workers + 1)
    ]
    start_dagster_with(supervisor, env, [mlflow, *workers], options)
    return env


def start_in_order(supervisor: Supervisor, env: Mapping[str, str], *waves: list[Service]) -> None:
    """Starts each wave of services at once and waits until they answer before the next wave."""
    for wave in waves:
        for service in wave:
            supervisor.start(service, env)
        supervisor.wait_ready([service.name for service in wave])


def start_dagster_with(supervisor: Supervisor, env: Mapping[str, str], others: list[Service], options: Options) -> None:
    """Starts the code server and `others`, the webserver and the daemon once the code server listens.

    Then waits until every service answers.
    """
    code_server, *rest = dagster_services(options, REPO / "deploy" / "workspace.yaml")
    start_in_order(supervisor, env, [code_server])  # first, as it loads slowest; its port opens at once
    for service in others:
        supervisor.start(service, env)
    start_in_order(supervisor, env, rest)
    supervisor.wait_ready(list(supervisor.services))


def prepare(env: Mapping[str, str], options: Options) -> None:
    """Demo data on first use and the DVC remote (`python -m ml_assets.cli prepare`)."""
    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli", "prepare"],
        env=dict(env),
        cwd=options.root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DevServerError(f"`python -m ml_assets.cli prepare` failed:\n{done.stdout}{done.stderr}")
    if done.stdout.strip():
        print(done.stdout.strip(), flush=True)


# -- the scale profile's stores ----------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The folder holding Debian's `postgres` and `initdb` (not on PATH), or `ML_ASSETS_PG_BINDIR`."""
    explicit = os.environ.get("ML_ASSETS_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    found = shutil.which("postgres")
    candidates += [Path(found).parent] if found else []
    for folder in candidates:
        if (folder / "postgres").is_file() and (folder / "initdb").is_file():
            return folder
    raise DevServerError("PostgreSQL is not installed: run `make scale-deps` (apt-get install postgresql redis-server)")


def postgres_service(options: Options, password: str) -> Service:
    """A PostgreSQL cluster in `<state>/postgres`, initialised on first use, run in the foreground.

    As root it runs as Debian's `postgres` user (PostgreSQL refuses root); authentication is
    scram-sha-256 with the profile's password, and it listens on 127.0.0.1 only (no Unix socket).
    """
    folder = postgres_bin()
    data = options.state / "postgres"
    user = "postgres" if os.geteuid() == 0 else None
    if not (data / "PG_VERSION").is_file():
        data.mkdir(parents=True, exist_ok=True)
        pwfile = options.state / "pg_password.tmp"
        pwfile.write_text(password + "\n")
        try:
            if user:
                shutil.chown(data, user)
                shutil.chown(pwfile, user)
            done = subprocess.run(
                [
                    *(str(folder / "initdb"), "-D", str(data), "-U", PG_USER, "--pwfile", str(pwfile)),
                    *("--auth", "scram-sha-256", "-E", "UTF8", "--no-instructions"),
                ],
                user=user,
                cwd=options.state,
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            where = f"; the user `{user}` must be able to enter {options.state}" if user else ""
            raise DevServerError(f"initdb failed{where}:\n{done.stdout}{done.stderr}")
    port = options.ports["postgres"]
    return Service(
        "postgres",
        [
            *(str(folder / "postgres"), "-D", str(data), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
        ],
        ready=lambda: _pg_connect(port, password, "postgres") is not None,
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnects clients instead of waiting for them
        user=user,
        cwd=options.state,
    )


def _pg_connect(port: int, password: str, database: str) -> object | None:
    import psycopg2

    try:
        return psycopg2.connect(
            host="127.0.0.1", port=port, user=PG_USER, password=password, dbname=database, connect_timeout=2
        )
    except psycopg2.OperationalError:
        return None


def ensure_databases(port: int, password: str, names: Sequence[str]) -> None:
    """Creates the named databases when missing (Dagster's and MLflow's)."""
    connection = _pg_connect(port, password, "postgres")
    if connection is None:
        raise DevServerError(f"PostgreSQL on 127.0.0.1:{port} refused the profile's password")
    connection.autocommit = True  # type: ignore[attr-defined]
    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        for name in names:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()  # type: ignore[attr-defined]


def redis_service(options: Options) -> Service:
    """Redis, the Celery broker, in the foreground on 127.0.0.1 (no snapshots: the queue is transient)."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).is_file():
        raise DevServerError("redis-server is not installed: run `make scale-deps` (apt-get install redis-server)")
    folder = options.state / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = options.ports["redis"]
    return Service(
        "redis",
        [found, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        ready=port_open(port),
    )


def s3_service(options: Options) -> Service:
    """Moto's S3 server, the DVC remote's endpoint (in memory: the local DVC cache keeps every version)."""
    port = options.ports["s3"]
    return Service("s3", [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], ready=port_open(port))


def ensure_bucket(env: Mapping[str, str]) -> None:
    """Creates the DVC bucket on the S3 server when missing."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["ML_ASSETS_DVC_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    if S3_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=S3_BUCKET)


def scale_password(state: Path) -> str:
    """`DAGSTER_PG_PASSWORD` if set, else one generated on first use into `<state>/secrets.env` (mode 600)."""
    if os.environ.get("DAGSTER_PG_PASSWORD"):
        return os.environ["DAGSTER_PG_PASSWORD"]
    path = state / "secrets.env"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("DAGSTER_PG_PASSWORD="):
                return line.split("=", 1)[1]
    state.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(f"DAGSTER_PG_PASSWORD={password}\n")
    return password


PROFILE_VARIABLES = (
    "DAGSTER_HOME",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
    "MLFLOW_TRACKING_URI",
    "ML_ASSETS_ROOT",
    "ML_ASSETS_EXECUTOR",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "ML_ASSETS_DVC_REMOTE",
    "ML_ASSETS_DVC_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "ML_ASSETS_GRPC_PORT",
    "ML_ASSETS_DATA_DOCS_URL",
)


def write_env_file(state: Path, env: Mapping[str, str]) -> Path:
    """`<state>/env` (mode 600): `set -a; . .scale/env` gives a shell the profile (`make run`, `make reproduce`)."""
    path = state / "env"
    path.touch(mode=0o600)
    path.write_text("".join(f"{name}={env[name]}\n" for name in PROFILE_VARIABLES if name in env))
    return path


# -- command line ------------------------------------------------------------------------------------------------


def print_ready(profile: str, supervisor: Supervisor, options: Options, started: float) -> None:
    """The table a person reads: what runs where, and how to stop it."""
    print(f"\nml_assets `{profile}` profile ready in {time.monotonic() - started:.0f} s:", flush=True)
    for name, service in supervisor.services.items():
        where = service.url or (f"127.0.0.1:{options.ports[name]}" if name in options.ports else "")
        print(f"  {name:<16} {where:<28} pid {supervisor.running[name].pid}", flush=True)
    print(f"logs in {supervisor.logs}/; Ctrl-C stops everything", flush=True)


def serve(profile: str, options: Options) -> int:
    """Starts the profile, waits for Ctrl-C or a service that dies, then stops everything."""
    started = time.monotonic()
    supervisor = Supervisor(options.state)

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    # Handled before any child starts: a handled signal is reset to its default in each child, so
    # Dagster's processes react to SIGINT even when this one was started with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    options.state.mkdir(parents=True, exist_ok=True)
    (options.state / "devserver.pid").write_text(str(os.getpid()))
    ready = options.state / "ready.json"
    ready.unlink(missing_ok=True)
    code = 0
    try:
        check_ports_free(options.ports, profile)
        print(f"starting the `{profile}` profile (state and logs in {options.state})", flush=True)
        env = run_embedded(supervisor, options) if profile == "embedded" else run_scale(supervisor, options)
        ready.write_text(
            json.dumps(
                {
                    "urls": {n: s.url for n, s in supervisor.services.items() if s.url},
                    "pids": {n: p.pid for n, p in supervisor.running.items()},
                    "env": {name: env[name] for name in PROFILE_VARIABLES if name in env},
                }
            )
        )
        print_ready(profile, supervisor, options, started)
        while True:
            supervisor.check_alive()
            time.sleep(0.5)
    except Interrupted as signame:
        print(f"\n{signame} received: stopping {len(supervisor.running)} services", flush=True)
    except DevServerError as error:
        print(f"\nERROR: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        supervisor.stop_all()
        ready.unlink(missing_ok=True)
        (options.state / "devserver.pid").unlink(missing_ok=True)
        print("all services stopped", flush=True)
    return code


def check_ports_free(ports: Mapping[str, int], profile: str) -> None:
    """Fails naming the port and the option to change it when something already listens there."""
    needed = ["dagster", "grpc", "docs", "mlflow"] + (["postgres", "redis", "s3"] if profile == "scale" else [])
    for name in needed:
        if port_open(ports[name])():
            raise DevServerError(
                f"port {ports[name]} ({name}) is already in use on 127.0.0.1 (another `make dev`?): "
                f"stop that, or pass --{name}-port / set ML_ASSETS_{name.upper()}_PORT"
            )


def detach(argv: Sequence[str], options: Options) -> int:
    """Runs the profile in the background (own session, log in the state folder); returns once it is ready."""
    options.state.mkdir(parents=True, exist_ok=True)
    log = options.state / "devserver.log"
    ready = options.state / "ready.json"
    ready.unlink(missing_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ml_assets.devserver", *[a for a in argv if a != "--detach"]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT + 60
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        time.sleep(0.5)
    urls = json.loads(ready.read_text())["urls"]
    print("\n".join(f"  {name:<16} {url}" for name, url in urls.items()))
    print(f"running in the background (pid {process.pid}, log {log}); stop with `make stop-scale`")
    return 0


def stop(state: Path) -> int:
    """Stops a profile started earlier: its supervisor first, then any recorded group still alive."""
    pidfile = state / "devserver.pid"
    if pidfile.is_file():
        pid = int(pidfile.read_text())
        try:
            is_ours = b"ml_assets.devserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            is_ours = False
        if is_ours:
            print(f"stopping the supervisor (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
    left = marked_processes(state)
    for pid_path in sorted((state / "pids").glob("*.pid")):
        pid = int(pid_path.read_text())
        if pid in left:
            print(f"killing {pid_path.stem} (process group {pid})")
            signal_group(pid, signal.SIGKILL)
        pid_path.unlink()
    for pid in marked_processes(state):
        os.kill(pid, signal.SIGKILL)
    print("nothing of this profile is running" if not marked_processes(state) else "some processes survived")
    return 0


def parse_options(args: argparse.Namespace) -> Options:
    """Resolves the root, the state folder and the ports (flag, then ML_ASSETS_<NAME>_PORT, then default)."""
    root = Path(args.root or os.environ.get("ML_ASSETS_ROOT") or ".").resolve()
    default_state = root / (".scale" if args.command == "scale" else ".dev")
    ports = {
        name: int(getattr(args, f"{name}_port") or os.environ.get(f"ML_ASSETS_{name.upper()}_PORT") or default)
        for name, default in DEFAULT_PORTS.items()
    }
    return Options(root=root, state=Path(args.state or default_state).resolve(), ports=ports, workers=args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m ml_assets.devserver", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=["embedded", "scale", "stop"])
    parser.add_argument("--root", help="the project root (default: ML_ASSETS_ROOT or the current folder)")
    parser.add_argument("--state", help="state, logs and pids (default: <root>/.dev or <root>/.scale)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers in the scale profile (default 2)")
    parser.add_argument("--detach", action="store_true", help="start in the background and return once ready")
    for name, default in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, help=f"default ML_ASSETS_{name.upper()}_PORT or {default}")
    args = parser.parse_args(argv)
    options = parse_options(args)
    if args.command == "stop":
        return stop(options.state)
    if args.detach:
        return detach(argv, options)
    return serve(args.command, options)


if __name__ == "__main__":
    raise SystemExit(main())
