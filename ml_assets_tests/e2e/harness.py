"""Starts the real processes: `dagster dev` on a temp home, and the profiles of `make dev` / `make dev-scale`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from ml_assets_tests.conftest import REPO, Project

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, every: float = 2.0) -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class DevServer:
    """A running `dagster dev` and the instance it writes to."""

    url: str
    home: Path
    log: Path
    instance: dg.DagsterInstance

    def runs(self, job: str, *, tags: dict[str, str] | None = None) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(dg.RunsFilter(job_name=job, tags=tags or {})))

    def finished(self, job: str, *, tags: dict[str, str] | None = None) -> list[dg.DagsterRun]:
        return [r for r in self.runs(job, tags=tags) if r.is_finished]


@contextmanager
def dagster_dev(project: Project, home: Path) -> Iterator[DevServer]:
    """Runs `dagster dev` for the project on a free port; stops the whole process group afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(project.root),
        "MLFLOW_TRACKING_URI": project.tracking_uri,
        "ML_ASSETS_DVC_REMOTE": str(project.dvc_remote),
        "GX_ANALYTICS_ENABLED": "false",
    }
    if project.webhook_url:
        env["ML_ASSETS_ALERT_WEBHOOK"] = project.webhook_url
    log = home / "dagster_dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "ml_assets.definitions"],
            cwd=project.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for("the Dagster webserver", up, timeout=120)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield DevServer(url=url, home=home, log=log, instance=instance)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


# -- `make dev` / `make dev-scale`: the supervisor in ml_assets/devserver.py ---------------------------------------


def free_ports(*names: str) -> dict[str, int]:
    """A distinct free port on 127.0.0.1 for each name."""
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def profile_processes(state: Path) -> list[int]:
    """Every live process started by the profile whose state folder is `state` (see `MARKER`)."""
    from ml_assets.devserver import marked_processes

    return marked_processes(state)


@dataclass
class Profile:
    """A running profile: the command a person typed (own process group), its state folder and `ready.json`."""

    process: subprocess.Popen[bytes]
    state: Path
    log: Path
    ready: dict[str, Any]

    @property
    def urls(self) -> dict[str, str]:
        return self.ready["urls"]

    @property
    def env(self) -> dict[str, str]:
        return self.ready["env"]

    @property
    def pids(self) -> dict[str, int]:
        return self.ready["pids"]

    def interrupt(self, *, within: float = 10.0) -> float:
        """Ctrl-C: SIGINT to the command's process group; the seconds until every process of it is gone.

        Fails naming the survivors (the command's group and every process the profile started,
        whatever its group) when any is left after `within` seconds.
        """
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        while time.monotonic() - started < within:
            if (
                self.process.poll() is not None
                and not _group_alive(self.process.pid)
                and not profile_processes(self.state)
            ):
                return time.monotonic() - started
            time.sleep(0.1)
        survivors = [_describe(pid) for pid in profile_processes(self.state)]
        raise AssertionError(f"still running {within:.0f} s after SIGINT: {survivors or 'the command itself'}")


def _group_alive(pgid: int) -> bool:
    from ml_assets.devserver import group_alive

    return group_alive(pgid)


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return f"{pid} {command[:120]}"
    except OSError:
        return str(pid)


@contextmanager
def devserver(
    command: list[str], *, state: Path, env: dict[str, str], cwd: Path, timeout: float = 420
) -> Iterator[Profile]:
    """Runs `command` (`make dev`, or `python -m ml_assets.devserver ...`) in its own process group, as a
    person's terminal would, until its `ready.json` appears; stops it (and anything it left) afterwards."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "ready.json").unlink(missing_ok=True)
    log = state.parent / f"{state.name}_command.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> dict[str, Any] | None:
        if process.poll() is not None:
            raise AssertionError(f"`{' '.join(command)}` exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        path = state / "ready.json"
        return json.loads(path.read_text()) if path.is_file() else None

    profile = None
    try:
        profile = Profile(
            process=process, state=state, log=log, ready=wait_for("the profile", ready, timeout=timeout, every=1)
        )
        yield profile
    finally:
        if process.poll() is None:
            with contextlib.suppress(AssertionError, ProcessLookupError):
                (profile or Profile(process, state, log, {})).interrupt(within=20)
        for pid in profile_processes(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Asks the webserver's GraphQL API (what the UI itself uses)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


LOCATION_NAMES = "query { workspaceOrError { ... on Workspace { locationEntries { name } } } }"


def launch_job(url: str, job: str, *, tags: dict[str, str] | None = None, location: str | None = None) -> str:
    """Launches `job` as the UI's Launch button does; returns the run id.

    `location` defaults to the server's only code location: `ml_assets` in the profiles' workspace,
    `ml_assets.definitions` under `dagster dev -m` (the module's name).
    """
    if location is None:
        [location] = [e["name"] for e in graphql(url, LOCATION_NAMES)["workspaceOrError"]["locationEntries"]]
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "pipelineName": job},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    answer = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"

RUNS = """
{ runsOrError { ... on Runs { results {
    runId jobName status startTime endTime
    tags { key value }
    executionPlan { steps { key } }
} } } }
"""

TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 20) { timestamp status skipReason runIds } } }
  }
}
"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class Run:
    """A run as the UI's Runs page shows it."""

    run_id: str
    job: str
    status: str
    start: float | None
    end: float | None
    tags: dict[str, str]
    steps: list[str]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def runs(url: str) -> list[Run]:
    """Every run of the instance, newest first, read through GraphQL."""
    return [
        Run(
            run_id=r["runId"],
            job=r["jobName"],
            status=r["status"],
            start=r["startTime"],
            end=r["endTime"],
            tags={t["key"]: t["value"] for t in r["tags"]},
            steps=[s["key"] for s in (r["executionPlan"] or {}).get("steps", [])],
        )
        for r in graphql(url, RUNS)["runsOrError"]["results"]
    ]


def sensor_ticks(url: str, sensor: str, *, location: str = "ml_assets") -> list[dict[str, Any]]:
    """The sensor's latest ticks, newest first (timestamp, status, skipReason, runIds)."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "sensorName": sensor}
    answer = graphql(url, TICKS, {"selector": selector})["sensorOrError"]
    return answer["sensorState"]["ticks"]


def wait_for_ticks(url: str, sensor: str, *, after: float, count: int, timeout: float) -> list[dict[str, Any]]:
    """Waits until `sensor` has finished `count` ticks after the epoch time `after`; returns those ticks, newest first.

    A tick still being evaluated (`STARTED`) is listed too, without its outcome: it does not count.
    """

    def ticked() -> list[dict[str, Any]] | None:
        ticks = [t for t in sensor_ticks(url, sensor) if t["timestamp"] > after and t["status"] != "STARTED"]
        return ticks if len(ticks) >= count else None

    return wait_for(f"{count} ticks of `{sensor}`", ticked, timeout=timeout, every=1)


def op_pools(defs: dg.Definitions) -> dict[str, str]:
    """Op (step) name -> its concurrency pool, over every job of the code location."""
    pools: dict[str, str] = {}
    for job in defs.resolve_all_job_defs():
        for op in job.graph.iterate_op_defs():
            if op.pool:
                pools[op.name] = op.pool
    return pools
