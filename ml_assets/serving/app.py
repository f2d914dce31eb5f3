"""The public ASGI proxy: routes each request to the stable or the candidate MLflow model server.

Starlette on uvicorn, with aiohttp as the client to the model servers (on this machine aiohttp proxied
about 6x the requests per second of httpx at 16 concurrent clients; see the README's Serving section).

- Request bodies are read as a stream up to `serving.max_body_bytes` (413 beyond it, or at once when
  `Content-Length` says so; 400 for a `Content-Length` that is not a byte count; 408 when the client
  stops sending for `body_timeout_seconds`). The whole body is kept (bounded) because it is routed by
  its hash and may be mirrored.
- Answers are streamed back; a model server slower than `backend_timeout_seconds` gives 504, one that
  cannot be reached 502. Bad JSON and wrong columns are the model server's to judge: its 4xx answer
  and message pass through unchanged.
- Every answer carries `X-Model-Name`, `X-Model-Version` and `X-Request-Id`; `GET /rollout` (and
  `GET /champion`) report the rollout state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ml_assets.lib.config import ServingParams
from ml_assets.lib.rollout import (
    REQUEST_ID_HEADER,
    Agreement,
    VersionWindow,
    request_id_for,
    routes_to_candidate,
    schedule,
)
from ml_assets.lib.rollout_report import StepReport

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
HISTORY = 50


@dataclass(eq=False)
class Upstream:
    """A model server the proxy can send requests to: the registered version it serves and its base URL."""

    version: str
    url: str
    in_flight: int = 0


class ProxyError(Exception):
    """A request the proxy answers itself, with a status and a JSON message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Router:
    """What the proxy routes to: stable, the candidate and its share; the counters of the current step.

    Everything runs on one event loop, so the controller and the request handlers share it without locks.
    """

    def __init__(self, *, model_name: str, params: ServingParams) -> None:
        self.model_name = model_name
        self.params = params
        self.stable: Upstream | None = None
        self.candidate: Upstream | None = None
        self.share = 0.0
        self.shadow = False
        self.step = 0
        self.step_started = time.monotonic()
        self.windows: dict[str, VersionWindow] = {}
        self.agreement: Agreement | None = None
        self.totals: dict[str, VersionWindow] = {}
        self.shadow_in_flight = 0
        self.failed: dict[str, str] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.serving_since: str | None = None

    # -- counters

    def begin_step(self, step: int) -> None:
        """Starts a step of the current rollout (or plain serving when there is no candidate): fresh counters."""
        self.step = step
        self.step_started = time.monotonic()
        size = self.params.latency_window
        self.windows = {u.version: VersionWindow(size=size) for u in (self.stable, self.candidate) if u is not None}
        steps = schedule(self.params)
        if self.candidate is not None:
            current = steps[min(step, len(steps) - 1)]
            self.share, self.shadow = current.share, current.shadow
            self.agreement = Agreement() if self.shadow else None
        else:
            self.share, self.shadow, self.agreement = 0.0, False, None

    def record(self, version: str, *, status: int, seconds: float) -> None:
        """Counts one answer of `version` in the current step and in its totals."""
        window = self.windows.get(version)
        if window is not None:
            window.record(status=status, seconds=seconds)
        total = self.totals.setdefault(version, VersionWindow(size=1000))
        total.record(status=status, seconds=seconds)

    def report(self, verdict: str, reason: str, **changes: Any) -> StepReport:
        """A snapshot of the current step for Dagster and `GET /rollout` (`changes` override fields)."""
        stable = self.stable.version if self.stable else None
        candidate = self.candidate.version if self.candidate else None
        values: dict[str, Any] = {
            "verdict": verdict,
            "reason": reason,
            "model_name": self.model_name,
            "mode": self.params.mode,
            "stable_version": stable,
            "candidate_version": candidate,
            "step": self.step,
            "steps": len(schedule(self.params)),
            "share": self.share,
            "shadow": self.shadow,
            "elapsed_seconds": time.monotonic() - self.step_started,
            "stable": self.windows.get(stable or "", VersionWindow(size=1)),
            "candidate": self.windows.get(candidate or "") if candidate else None,
            "agreement": self.agreement,
        }
        values.update(changes)
        return StepReport(**values)

    def status(self) -> dict[str, Any]:
        """The body of `GET /rollout`: what is served, the split, this step's counters and recent events."""
        current = self.report("in_progress" if self.candidate else "serving", "")
        return {
            "model": self.model_name,
            "alias": "champion",
            "version": self.stable.version if self.stable else None,
            "candidate_version": self.candidate.version if self.candidate else None,
            "mode": self.params.mode,
            "share": self.share,
            "shadow": self.shadow,
            "serving_since": self.serving_since,
            "step": current.metadata(),
            "totals": {
                version: {"requests": w.requests, "errors": w.errors, "rejected": w.rejected}
                for version, w in self.totals.items()
            },
            "failed_versions": dict(self.failed),
            "history": list(self.history),
        }


@dataclass
class _Pair:
    """Stable's and the candidate's answer to one mirrored request, compared once both are in."""

    stable: tuple[int, bytes | None] | None = None
    candidate: tuple[int, bytes | None] | None = None


def _stamp(router: Router, upstream: Upstream | None, request_id: str | None) -> dict[str, str]:
    headers = {"X-Model-Name": router.model_name}
    if upstream is not None:
        headers["X-Model-Version"] = upstream.version
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return headers


def _error(status: int, message: str, headers: Mapping[str, str]) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers))


async def read_body(request: Request, *, limit: int, timeout: float) -> bytes:
    """Reads the request body as a stream, never more than `limit` bytes.

    Args:
        request: The incoming request.
        limit: The largest body accepted, in bytes.
        timeout: Seconds the whole body may take to arrive.

    Returns:
        The body.

    Raises:
        ProxyError: 400 for a `Content-Length` that is not a byte count, 413 for a body over `limit`,
            408 when the body does not arrive in time.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.strip().isascii() and declared.strip().isdigit()):
            raise ProxyError(400, f"Content-Length `{declared[:40]}` is not a byte count; send the body's size")
        if int(declared) > limit:
            raise ProxyError(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ProxyError(413, f"request body is over the limit of {limit:,} bytes")
                chunks.append(chunk)
    except TimeoutError as error:
        raise ProxyError(408, f"the request body did not arrive within {timeout:g} s") from error
    except ClientDisconnect as error:
        raise ProxyError(400, "the client closed the connection before sending the whole body") from error
    return b"".join(chunks)


class Proxy:
    """The request handlers; one instance per app, holding the aiohttp session once the app started."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.router.params.backend_timeout_seconds)

    async def status(self, request: Request) -> Response:
        """`GET /rollout` and `GET /champion`."""
        return JSONResponse(self.router.status(), headers=_stamp(self.router, self.router.stable, None))

    async def forward(self, request: Request) -> Response:
        """Any other path: route, forward, stream the answer back and count it."""
        router, params = self.router, self.router.params
        stable = router.stable
        try:
            body = await read_body(request, limit=params.max_body_bytes, timeout=params.body_timeout_seconds)
        except ProxyError as error:
            return _error(error.status, error.message, _stamp(router, stable, request.headers.get(REQUEST_ID_HEADER)))
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER), body)
        if stable is None or self.session is None:
            return _error(503, f"no champion of `{router.model_name}` is being served yet", _stamp(router, None, None))
        scoring = request.url.path == "/invocations"
        candidate = router.candidate
        to_candidate = scoring and candidate is not None and routes_to_candidate(request_id, share=router.share)
        upstream = candidate if to_candidate and candidate is not None else stable
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers[REQUEST_ID_HEADER] = request_id
        target = upstream.url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        pair = None
        if scoring and not to_candidate and router.shadow and candidate is not None:
            pair = self._mirror(
                candidate, target.replace(upstream.url, candidate.url, 1), request.method, body, headers
            )
        stamp = _stamp(router, upstream, request_id)
        started = time.perf_counter()
        upstream.in_flight += 1
        try:
            answer = await self.session.request(
                request.method, target, data=body, headers=headers, timeout=self._timeout(), allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            upstream.in_flight -= 1
            status, message = _failure(error, upstream, params)
            if scoring:
                router.record(upstream.version, status=status, seconds=time.perf_counter() - started)
            if pair is not None:
                self._settle(pair, stable=(status, None))
            return _error(status, message, stamp)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"server", "date"}}
        if "Content-Length" in answer.headers:
            out["Content-Length"] = answer.headers["Content-Length"]
        return StreamingResponse(
            self._relay(answer, upstream, scoring=scoring, started=started, pair=pair),
            status_code=answer.status,
            headers={**out, **stamp},
        )

    async def _relay(
        self,
        answer: aiohttp.ClientResponse,
        upstream: Upstream,
        *,
        scoring: bool,
        started: float,
        pair: _Pair | None,
    ) -> AsyncIterator[bytes]:
        """Streams the model server's answer to the client; counts it once it ended."""
        kept: bytearray | None = bytearray() if pair is not None else None
        limit = self.router.params.max_body_bytes
        status = answer.status
        try:
            async for chunk in answer.content.iter_any():
                if kept is not None and len(kept) <= limit:
                    kept += chunk
                yield chunk
        except (TimeoutError, aiohttp.ClientError):
            status = 504
            raise  # the headers are out: the client sees the connection cut, never a silently short answer
        finally:
            answer.release()
            upstream.in_flight -= 1
            if scoring:
                self.router.record(upstream.version, status=status, seconds=time.perf_counter() - started)
            if pair is not None:
                whole = kept is not None and len(kept) <= limit
                self._settle(pair, stable=(status, bytes(kept) if whole and kept is not None else None))

    # -- shadow

    def _mirror(self, candidate: Upstream, url: str, method: str, body: bytes, headers: dict[str, str]) -> _Pair | None:
        router = self.router
        if router.agreement is None:
            return None
        if router.shadow_in_flight >= router.params.shadow_max_in_flight:
            router.agreement.busy += 1  # never queue: a slow candidate must not grow memory
            return None
        pair = _Pair()
        router.shadow_in_flight += 1
        task = asyncio.create_task(self._score_mirror(candidate, url, method, body, headers, pair))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return pair

    async def _score_mirror(
        self, candidate: Upstream, url: str, method: str, body: bytes, headers: dict[str, str], pair: _Pair
    ) -> None:
        router, limit = self.router, self.router.params.max_body_bytes
        started = time.perf_counter()
        data: bytes | None = None
        candidate.in_flight += 1
        try:
            assert self.session is not None
            async with self.session.request(method, url, data=body, headers=headers, timeout=self._timeout()) as answer:
                status = answer.status
                kept = bytearray()
                async for chunk in answer.content.iter_any():
                    kept += chunk
                    if len(kept) > limit:
                        break
                data = bytes(kept) if len(kept) <= limit else None
        except (TimeoutError, aiohttp.ClientError) as error:
            status, _ = _failure(error, candidate, router.params)
        finally:
            candidate.in_flight -= 1
            router.shadow_in_flight -= 1
        router.record(candidate.version, status=status, seconds=time.perf_counter() - started)
        self._settle(pair, candidate=(status, data))

    def _settle(
        self,
        pair: _Pair,
        *,
        stable: tuple[int, bytes | None] | None = None,
        candidate: tuple[int, bytes | None] | None = None,
    ) -> None:
        pair.stable = stable or pair.stable
        pair.candidate = candidate or pair.candidate
        agreement = self.router.agreement
        if pair.stable is None or pair.candidate is None or agreement is None:
            return
        (a_status, a_body), (b_status, b_body) = pair.stable, pair.candidate
        if a_status != 200 or b_status != 200 or a_body is None or b_body is None:
            agreement.skipped += 1
            return
        try:
            agreement.add(json.loads(a_body), json.loads(b_body))
        except ValueError:
            agreement.skipped += 1

    async def close(self) -> None:
        """Cancels mirrored requests still in flight and closes the client session."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=2)
        if self.session is not None:
            await self.session.close()


def _failure(error: BaseException, upstream: Upstream, params: ServingParams) -> tuple[int, str]:
    if isinstance(error, TimeoutError):
        return 504, (
            f"the model server for v{upstream.version} did not answer within {params.backend_timeout_seconds:g} s "
            "(serving.backend_timeout_seconds)"
        )
    return 502, f"the model server for v{upstream.version} could not be reached: {error}"


Lifecycle = Callable[[Router, aiohttp.ClientSession], contextlib.AbstractAsyncContextManager[Any]]


def create_app(router: Router, *, lifecycle: Lifecycle | None = None) -> Starlette:
    """Builds the proxy app around `router`.

    Args:
        router: What to route to; the tests fill it with fake model servers.
        lifecycle: Runs beside the app (the controller that starts model servers and drives the rollout);
            entered at start-up with the router and the client session, left at shutdown.

    Returns:
        The ASGI app.
    """
    proxy = Proxy(router)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=128)
        proxy.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        try:
            if lifecycle is None:
                yield
            else:
                async with lifecycle(router, proxy.session):
                    yield
        finally:
            await proxy.close()

    routes = [
        Route("/rollout", proxy.status, methods=["GET"]),
        Route("/champion", proxy.status, methods=["GET"]),
        Route("/{path:path}", proxy.forward, methods=METHODS),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.router = router
    app.state.proxy = proxy
    return app
