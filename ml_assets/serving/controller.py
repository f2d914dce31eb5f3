"""Follows the registry's `champion` alias and drives each new version's rollout behind the proxy.

Every `serving.poll_seconds` it reads `@champion`; four times a second it judges the current step
(`ml_assets.lib.rollout.judge`) and widens, promotes or rolls back. It starts and stops the MLflow model
servers, reports each step to Dagster, and keeps the stable version and the failed versions in
`serving.state_path`, so a restarted proxy goes back to the version clients had (and does not retry a
version that failed) instead of serving a half-rolled-out candidate to everyone.

It never moves the alias: a rolled-back version stays `@champion` until the registry's single writer
(the lead's sensor, reacting to the `rolled_back` verdict on the `rollout` asset) moves it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ml_assets.lib.config import ParamsError, load_params
from ml_assets.lib.rollout import judge, schedule
from ml_assets.lib.rollout_report import StepReport
from ml_assets.serving.app import Router, Upstream
from ml_assets.serving.backends import Backend, log, start_backend, stop_backend
from ml_assets.serving.reporting import DagsterReporter

TICK_SECONDS = 0.25
DRAIN_SECONDS = 30.0
RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Target:
    """What to serve: the registered model, the registry, the project's params file and the children's env."""

    model_name: str
    tracking_uri: str
    params_path: Path
    state_path: Path
    env: Mapping[str, str]
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # command-line over `serving:`


class Controller:
    """Starts, judges and retires model servers; one per proxy process."""

    def __init__(self, target: Target, router: Router, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.router = router
        self.session = session
        self.reporter = DagsterReporter.from_env(target.env, session=session)
        self.children: set[Backend] = set()  # every model server started and not yet stopped
        self.upstreams: dict[Backend, Upstream] = {}
        self.stable: Backend | None = None
        self.candidate: Backend | None = None
        self.starting: tuple[str, asyncio.Task[None]] | None = None
        self.retry_at: dict[str, float] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._client: Any = None
        self._said: str | None = None
        state = self._load_state()
        self.remembered_stable: str | None = state.get("stable_version")
        router.failed.update(state.get("failed_versions") or {})

    # -- the registry

    def champion_version(self) -> str | None:
        """Reads the version `@champion` points at; None when there is none or the registry is unreachable."""
        from ml_assets.lib import tracking

        try:
            if self._client is None:
                from mlflow import MlflowClient

                uri = self.target.tracking_uri
                self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            version = tracking.alias_version(self._client, self.target.model_name, tracking.CHAMPION)
        except Exception as error:  # a locked SQLite file or a restarting server must not stop serving
            self._say(f"could not read `{self.target.model_name}@champion` from {self.target.tracking_uri}: {error}")
            return None
        return str(version.version) if version is not None else None

    def _say(self, message: str) -> None:
        """Logs a condition once until it changes."""
        if message != self._said:
            log(message)
            self._said = message

    # -- the loop

    async def run(self) -> None:
        """Polls the alias and judges the rollout until cancelled."""
        self._spawn(self.reporter.run())
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.router.params.poll_seconds
                self.follow(await asyncio.to_thread(self.champion_version))
            self.watch_children()
            self.judge_step()
            await asyncio.sleep(TICK_SECONDS)

    def follow(self, version: str | None) -> None:
        """Reacts to where `@champion` points: serve it, roll it out, or keep stable (see the module doc)."""
        stable = self.stable.version if self.stable else None
        if version is None:
            name = self.target.model_name
            self._say(
                f"no `{name}@champion` readable; "
                + (f"v{stable} keeps serving" if stable else "answering 503 until there is one")
            )
            return
        if self.stable is None:
            # After a restart, clients get the version they had before, and the champion is rolled out again.
            wanted = self.remembered_stable or version
            if self.starting is None and time.monotonic() >= self.retry_at.get(wanted, 0.0):
                self._start(wanted, role="stable")
            return
        if version == stable:
            if self.candidate is not None:
                self.end_candidate("aborted", f"`@champion` moved back to stable v{stable}")
            self._cancel_start()
            self._say(f"serving v{stable}")
            return
        if version in self.router.failed:
            self._say(
                f"`@champion` points at v{version}, which failed its rollout ({self.router.failed[version]}); "
                f"v{stable} keeps serving until the registry's champion is moved"
            )
            return
        if self.candidate is not None and self.candidate.version == version:
            return
        if self.starting is not None and self.starting[0] == version:
            return
        if self.candidate is not None:
            self.end_candidate("superseded", f"`@champion` moved on to v{version}")
        self._cancel_start()
        self.reload_params()
        self._start(version, role="candidate")

    def reload_params(self) -> None:
        """Reads `serving:` again, so a changed mode or bound applies from the next rollout on."""
        try:
            serving = load_params(self.target.params_path).serving
            self.router.params = dataclasses.replace(serving, **self.target.overrides)
        except (ParamsError, OSError) as error:
            log(f"{self.target.params_path}: {error}; the next rollout keeps the previous `serving:` settings")

    # -- model servers

    def _start(self, version: str, *, role: str) -> None:
        task = asyncio.create_task(self._bring_up(version, role=role))
        self.starting = (version, task)

    def _cancel_start(self) -> None:
        if self.starting is not None:
            self.starting[1].cancel()
            self.starting = None

    async def _bring_up(self, version: str, *, role: str) -> None:
        params = self.router.params
        began = time.monotonic()
        backend = start_backend(
            self.target.model_name, version, tracking_uri=self.target.tracking_uri, env=self.target.env
        )
        self.children.add(backend)
        self.upstreams[backend] = Upstream(version=version, url=backend.url)
        try:
            problem = await self._wait_ready(backend, timeout=params.startup_timeout_seconds)
        except asyncio.CancelledError:
            self._retire(backend, drain=False)
            raise
        finally:
            if self.starting is not None and self.starting[0] == version:
                self.starting = None
        took = time.monotonic() - began
        if problem is not None:
            self._retire(backend, drain=False)
            if role == "stable":
                self.retry_at[version] = time.monotonic() + RETRY_SECONDS
                if version == self.remembered_stable:
                    self.remembered_stable = None  # fall back to the champion itself
                log(f"v{version} did not come up ({problem}); retrying in {RETRY_SECONDS:.0f} s")
            else:
                self.candidate = None
                self.fail(version, f"its model server did not come up: {problem}", step=0)
            return
        if role == "stable":
            self.stable = backend
            self.router.stable = self.upstreams[backend]
            self.router.serving_since = _now()
            self.router.begin_step(0)
            log(f"serving `{self.target.model_name}` v{version} (ready in {took:.1f} s)")
            self.publish(self.router.report("serving", f"v{version} serves all traffic"))
            self.save_state()
            return
        self.candidate = backend
        self.router.candidate = self.upstreams[backend]
        self.router.begin_step(0)
        params = self.router.params
        if params.mode == "direct":
            self.promote("`serving.mode` is direct")
            return
        first = schedule(params)[0]
        what = "mirrored (shadow)" if first.shadow else f"{first.share:.0%} of requests (canary)"
        log(f"v{version} is ready in {took:.1f} s; rollout starts: {what}, v{self.stable_version()} stays stable")
        self.publish(self.router.report("started", f"v{version} gets {what}"))

    async def _wait_ready(self, backend: Backend, *, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not backend.alive():
                return f"its server exited with code {backend.process.returncode}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(f"{backend.url}/ping", timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return None
            await asyncio.sleep(0.25)
        return f"no /ping answer in {timeout:.0f} s"

    def _retire(self, backend: Backend, *, drain: bool = True) -> None:
        self._spawn(self._stop_later(backend, drain=drain))

    async def _stop_later(self, backend: Backend, *, drain: bool) -> None:
        """Waits (at most `DRAIN_SECONDS`) for requests already sent to finish there, then stops the server."""
        upstream = self.upstreams.get(backend)
        deadline = time.monotonic() + DRAIN_SECONDS
        while drain and upstream is not None and upstream.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(stop_backend, backend)
        self.children.discard(backend)
        self.upstreams.pop(backend, None)
        log(f"stopped v{backend.version} (pid {backend.process.pid})")

    def watch_children(self) -> None:
        """Restarts a dead stable server on its version; a dead candidate fails its rollout."""
        if self.candidate is not None and not self.candidate.alive():
            code = self.candidate.process.returncode
            self.end_candidate("rolled_back", f"its model server exited with code {code}", failed=True)
        if self.stable is not None and not self.stable.alive() and self.starting is None:
            version = self.stable.version
            log(f"the server for stable v{version} exited (code {self.stable.process.returncode}); restarting it")
            self._retire(self.stable, drain=False)
            self.stable = None
            self.router.stable = None
            self.remembered_stable = version
            self._start(version, role="stable")

    # -- the rollout

    def stable_version(self) -> str | None:
        """The version every client gets outside the candidate's share."""
        return self.stable.version if self.stable else None

    def judge_step(self) -> None:
        """Looks at the current step once and acts on the decision."""
        router = self.router
        if self.candidate is None or router.candidate is None or router.stable is None:
            return
        candidate, stable = router.windows.get(router.candidate.version), router.windows.get(router.stable.version)
        if candidate is None or stable is None:
            return
        decision = judge(
            router.params,
            step=router.step,
            elapsed_seconds=time.monotonic() - router.step_started,
            candidate=candidate,
            stable=stable,
            agreement=router.agreement,
        )
        if decision.action == "rollback":
            self.end_candidate("rolled_back", decision.reason, failed=True, guardrails=decision.guardrails)
        elif decision.action == "promote":
            self.promote(decision.reason, guardrails=decision.guardrails)
        elif decision.action == "widen":
            finished = router.report("widened", decision.reason, guardrails=decision.guardrails)
            router.begin_step(router.step + 1)
            report = router.report(
                "widened",
                decision.reason,
                stable=finished.stable,
                candidate=finished.candidate,
                agreement=finished.agreement,
                elapsed_seconds=finished.elapsed_seconds,
                guardrails=decision.guardrails,
            )
            log(f"v{router.candidate.version}: {decision.reason}")
            self.publish(report)

    def promote(self, reason: str, **extra: Any) -> None:
        """The candidate takes all traffic and becomes stable; the old stable drains and stops."""
        router, old, new = self.router, self.stable, self.candidate
        if new is None or router.candidate is None:
            return
        report = router.report("promoted_full", reason, share=1.0, shadow=False, **extra)
        router.stable, router.candidate = router.candidate, None
        self.stable, self.candidate = new, None
        router.serving_since = _now()
        router.begin_step(0)
        log(f"v{new.version} takes all traffic ({reason})" + (f"; v{old.version} drains and stops" if old else ""))
        self.publish(report)
        self.save_state()
        if old is not None:
            self._retire(old)

    def end_candidate(self, verdict: str, reason: str, *, failed: bool = False, **extra: Any) -> None:
        """Stops the rollout: all traffic returns to stable; a failed candidate is remembered and not retried."""
        router, candidate = self.router, self.candidate
        if candidate is None:
            return
        report = router.report(verdict, reason, share=0.0, shadow=False, **extra)
        router.candidate = None
        self.candidate = None
        router.begin_step(0)
        log(f"v{candidate.version} {verdict.replace('_', ' ')}: {reason}; v{self.stable_version()} serves all traffic")
        if failed:
            router.failed[candidate.version] = reason
        self.publish(report)
        self.save_state()
        self._retire(candidate)

    def fail(self, version: str, reason: str, *, step: int) -> None:
        """A candidate that never served: reported as rolled back, remembered as failed."""
        self.router.failed[version] = reason
        log(f"v{version} rolled back: {reason}; v{self.stable_version()} keeps serving")
        self.publish(self.router.report("rolled_back", reason, candidate_version=version, share=0.0, step=step))
        self.save_state()

    def publish(self, report: StepReport) -> None:
        """Keeps the step in `GET /rollout`'s history and sends it to Dagster."""
        entry = {"at": _now(), **report.metadata()}
        self.router.history.append(entry)
        self.reporter.submit(report)

    # -- state that survives a restart

    def _load_state(self) -> dict[str, Any]:
        path = self.target.state_path
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log(f"ignoring unreadable rollout state {path}: {error}")
            return {}
        return state if state.get("model_name") == self.target.model_name else {}

    def save_state(self) -> None:
        """Writes the stable version and the failed versions atomically."""
        path = self.target.state_path
        state = {
            "model_name": self.target.model_name,
            "stable_version": self.stable_version(),
            "failed_versions": self.router.failed,
            "updated": _now(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(state, indent=2))
            os.replace(temp, path)
        except OSError as error:
            log(f"could not write the rollout state {path}: {error}; serving goes on")

    # -- shutdown

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def shutdown(self) -> None:
        """Stops every model server this process started, in parallel, and sends what is left to report."""
        self._cancel_start()
        await self.reporter.drain(timeout=1.0)
        for task in list(self.tasks):
            task.cancel()
        children = list(self.children)
        await asyncio.gather(*(asyncio.to_thread(stop_backend, b, grace=3.0) for b in children))
        for backend in children:
            log(f"stopped v{backend.version} (pid {backend.process.pid})")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def lifecycle(target: Target) -> Any:
    """The proxy app's companion: runs a `Controller` beside the app and stops its children at shutdown."""

    @contextlib.asynccontextmanager
    async def run(router: Router, session: aiohttp.ClientSession) -> AsyncIterator[None]:
        controller = Controller(target, router, session)
        task = asyncio.create_task(controller.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await controller.shutdown()

    return run
