"""Reports every rollout step to Dagster as a materialization of the external asset `rollout`.

It uses the Dagster webserver's endpoints for assets that Dagster does not materialize itself
(`POST /report_asset_materialization/rollout` and `POST /report_asset_check/rollout`), at
`DAGSTER_WEBSERVER_URL` (default http://127.0.0.1:3000; empty to switch reporting off). Reports go
through a bounded queue, in order; a Dagster that is down or slow is logged once and never delays
or stops serving (the step stays readable on the proxy's `GET /rollout`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ml_assets.lib.rollout_report import StepReport
from ml_assets.serving.backends import log

ASSET_KEY = "rollout"
DEFAULT_URL = "http://127.0.0.1:3000"
QUEUE_SIZE = 100
TIMEOUT_SECONDS = 5.0


def check_name(guardrail: str) -> str:
    """The name of the `rollout` asset check that carries a guardrail (see `ml_assets/defs/rollout.py`)."""
    return f"{guardrail}_within_bound"


@dataclass(frozen=True)
class _Post:
    path: str
    body: Mapping[str, Any]


class DagsterReporter:
    """Sends step reports to the Dagster webserver in the background, in order, dropping the oldest when full."""

    def __init__(self, *, url: str | None, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/") if url else None
        self.session = session
        self.queue: asyncio.Queue[list[_Post]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.sent = 0
        self.failed = 0
        self._down = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, session: aiohttp.ClientSession) -> DagsterReporter:
        """Reads `DAGSTER_WEBSERVER_URL` (unset: the local default; empty: no reporting)."""
        return cls(url=env.get("DAGSTER_WEBSERVER_URL", DEFAULT_URL), session=session)

    def submit(self, report: StepReport) -> None:
        """Queues one step: the materialization, then one check evaluation per judged guardrail."""
        if self.url is None:
            return
        metadata = report.metadata()
        posts = [
            _Post(
                f"/report_asset_materialization/{ASSET_KEY}",
                {"metadata": metadata, "description": f"{report.verdict}: {report.reason}"},
            )
        ]
        for guardrail in report.guardrails:
            if guardrail.passed is None:
                continue
            posts.append(
                _Post(
                    f"/report_asset_check/{ASSET_KEY}",
                    {
                        "check_name": check_name(guardrail.name),
                        "passed": guardrail.passed,
                        "severity": "ERROR",
                        "metadata": {
                            "observed": guardrail.observed,
                            "bound": guardrail.bound,
                            "detail": guardrail.detail,
                            "candidate_version": report.candidate_version,
                            "verdict": report.verdict,
                        },
                    },
                )
            )
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.failed += 1
                log(f"Dagster report queue full ({QUEUE_SIZE}); dropped the oldest step report")
        self.queue.put_nowait(posts)

    async def run(self) -> None:
        """Sends queued reports until cancelled."""
        while True:
            posts = await self.queue.get()
            for post in posts:
                await self._send(post)

    async def drain(self, *, timeout: float) -> None:
        """Sends what is queued, for at most `timeout` seconds (used at shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.queue.empty():
                    for post in self.queue.get_nowait():
                        await self._send(post)

    async def _send(self, post: _Post) -> None:
        assert self.url is not None
        url = self.url + post.path
        try:
            async with self.session.post(
                url, json={k: _clean(v) for k, v in post.body.items()}, timeout=aiohttp.ClientTimeout(TIMEOUT_SECONDS)
            ) as answer:
                text = await answer.text()
                if answer.status != 200:
                    raise RuntimeError(f"HTTP {answer.status}: {text[:300]}")
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as error:
            self.failed += 1
            if not self._down:
                log(
                    f"could not report the rollout to Dagster at {url}: {error}; serving goes on, the step is on "
                    "GET /rollout (set DAGSTER_WEBSERVER_URL to the webserver, or empty to stop reporting)"
                )
                self._down = True
            return
        self.sent += 1
        if self._down:
            log(f"reporting to Dagster at {self.url} works again")
            self._down = False


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    return value
