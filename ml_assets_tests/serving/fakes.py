"""Fake MLflow scoring servers (Starlette on uvicorn in a thread) for the proxy's tests."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

COLUMNS = ["a", "b"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scoring_app(version: str) -> Starlette:
    """Answers like MLflow's scoring server: 400 with a message for bad JSON or missing columns.

    Headers steer it: `X-Sleep: s` waits s seconds first, `X-Fail: 1` answers 500. Version "2" predicts
    the other class than version "1", so shadow agreement is 0.
    """

    async def invocations(request: Request) -> Response:
        body = await request.body()
        await asyncio.sleep(float(request.headers.get("x-sleep", "0")))
        if request.headers.get("x-fail"):
            return JSONResponse({"error_code": "INTERNAL_ERROR", "message": f"v{version} failed"}, status_code=500)
        try:
            payload = json.loads(body)
        except ValueError as error:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": f"Invalid input. {error}"}, status_code=400)
        split = payload.get("dataframe_split") if isinstance(payload, dict) else None
        columns = split.get("columns", []) if isinstance(split, dict) else []
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            message = f"Failed to enforce schema of data: Model is missing inputs {missing}."
            return JSONResponse({"error_code": "BAD_REQUEST", "message": message}, status_code=400)
        rows = split["data"] if isinstance(split, dict) else []
        p = 0.8 if version == "1" else 0.2
        return JSONResponse({"predictions": [[1 - p, p] for _ in rows]})

    async def ping(request: Request) -> Response:
        return Response("\n", status_code=200)

    return Starlette(
        routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping, methods=["GET"])]
    )


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_in_thread(app: Starlette, *, config: Callable[..., uvicorn.Config] | None = None) -> Iterator[Running]:
    """Runs `app` on a free 127.0.0.1 port until the block ends (`config`: how to build uvicorn's config)."""
    port = free_port()
    build = config or (lambda app, host, port: uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server = uvicorn.Server(build(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the fake server did not start")
        time.sleep(0.02)
    try:
        yield Running(url=f"http://127.0.0.1:{port}", server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
