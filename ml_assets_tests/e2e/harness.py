"""Starts the real processes `dagster dev` runs (webserver, daemon, code server) on a temp home."""

from __future__ import annotations

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
from typing import TypeVar

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
