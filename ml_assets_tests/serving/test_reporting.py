"""Rollout steps reach Dagster's report endpoints as JSON; a Dagster that is down never stops serving."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ml_assets.lib.config import ServingParams
from ml_assets.lib.rollout import judge
from ml_assets.serving.app import Router, Upstream
from ml_assets.serving.reporting import DagsterReporter
from ml_assets_tests.serving.fakes import free_port, serve_in_thread


def rolled_back_report() -> Any:
    params = ServingParams(min_requests_per_step=50)
    router = Router(model_name="churn_classifier", params=params)
    router.stable, router.candidate = Upstream("1", "http://a"), Upstream("2", "http://b")
    router.begin_step(0)
    for _ in range(5):
        router.record("2", status=500, seconds=0.01)
        router.record("1", status=200, seconds=0.01)
    decision = judge(params, step=0, elapsed_seconds=1, candidate=router.windows["2"], stable=router.windows["1"])
    assert decision.action == "rollback"
    return router.report("rolled_back", decision.reason, share=0.0, guardrails=decision.guardrails)


async def send(url: str | None) -> DagsterReporter:
    async with aiohttp.ClientSession() as session:
        reporter = DagsterReporter(url=url, session=session)
        reporter.submit(rolled_back_report())
        await reporter.drain(timeout=10)
        return reporter


def test_a_step_is_posted_as_a_materialization_and_check_evaluations():
    received: list[tuple[str, str | None, dict[str, Any]]] = []

    async def record(request: Request) -> JSONResponse:
        received.append((request.url.path, request.headers.get("content-type"), await request.json()))
        return JSONResponse({})

    app = Starlette(routes=[Route("/{path:path}", record, methods=["POST"])])
    with serve_in_thread(app) as dagster:
        reporter = asyncio.run(send(dagster.url))
    assert reporter.failed == 0 and reporter.sent == len(received)
    [(path, content_type, body), *checks] = received
    assert path == "/report_asset_materialization/rollout" and content_type == "application/json"
    metadata = body["metadata"]
    assert metadata["verdict"] == "rolled_back" and metadata["candidate_version"] == "2"
    assert "error_rate" in metadata["reason"] and metadata["candidate_share"] == 0.0
    assert None not in metadata.values()
    error_rate = next(c for p, _, c in checks if c["check_name"] == "error_rate_within_bound")
    assert {p for p, _, _ in checks} == {"/report_asset_check/rollout"}
    assert error_rate["passed"] is False and error_rate["metadata"]["candidate_version"] == "2"


def test_an_unreachable_dagster_is_counted_and_never_raises():
    reporter = asyncio.run(send(f"http://127.0.0.1:{free_port()}"))
    assert reporter.sent == 0 and reporter.failed >= 1


def test_an_empty_url_switches_reporting_off():
    reporter = asyncio.run(send(None))
    assert reporter.queue.empty() and reporter.sent == reporter.failed == 0
