"""The proxy app against fake model servers: routing, headers, malformed requests, limits, timeouts."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from ml_assets.lib.config import ServingParams
from ml_assets.lib.rollout import bucket
from ml_assets.serving.app import Router, Upstream, create_app
from ml_assets.serving.server import server_config
from ml_assets_tests.serving.fakes import Running, free_port, scoring_app, serve_in_thread

PARAMS = ServingParams(max_body_bytes=4096, backend_timeout_seconds=1.0, body_timeout_seconds=1.0)
GOOD = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Running]]:
    with serve_in_thread(scoring_app("1")) as v1, serve_in_thread(scoring_app("2")) as v2:
        yield {"1": v1, "2": v2}


def make_router(backends: dict[str, Running], *, params: ServingParams = PARAMS, candidate: bool = False) -> Router:
    router = Router(model_name="churn_classifier", params=params)
    router.stable = Upstream(version="1", url=backends["1"].url)
    if candidate:
        router.candidate = Upstream(version="2", url=backends["2"].url)
    router.begin_step(0)
    return router


@pytest.fixture
def client(backends: dict[str, Running]) -> Iterator[TestClient]:
    with TestClient(create_app(make_router(backends))) as client:
        yield client


def test_a_request_is_answered_by_stable_with_the_version_and_request_id(client: TestClient):
    answer = client.post("/invocations", json=GOOD, headers={"X-Request-Id": "abc"})
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [[pytest.approx(0.2), 0.8], [pytest.approx(0.2), 0.8]]}
    assert answer.headers["X-Model-Version"] == "1"
    assert answer.headers["X-Model-Name"] == "churn_classifier"
    assert answer.headers["X-Request-Id"] == "abc"
    status = client.get("/rollout").json()
    assert status["version"] == "1" and status["candidate_version"] is None
    assert status["totals"]["1"]["requests"] == 1


def test_bad_json_gets_the_model_servers_400_and_message(client: TestClient):
    answer = client.post("/invocations", content=b'{"dataframe_split": ', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "Invalid input" in answer.json()["message"]
    assert answer.headers["X-Model-Version"] == "1"


def test_missing_columns_get_the_model_servers_400_and_message(client: TestClient):
    answer = client.post("/invocations", json={"dataframe_split": {"columns": ["a"], "data": [[1]]}})
    assert answer.status_code == 400
    assert "missing inputs ['b']" in answer.json()["message"]


def test_an_oversize_body_gets_413_with_and_without_content_length(client: TestClient):
    big = b"x" * (PARAMS.max_body_bytes + 1)
    answer = client.post("/invocations", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "limit of 4,096 bytes" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted while streaming
        for _ in range(10):
            yield b"x" * 1000

    answer = client.post("/invocations", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "error" in answer.json()


def test_a_slow_model_server_gets_504_and_counts_as_an_error(client: TestClient):
    answer = client.post("/invocations", json=GOOD, headers={"X-Sleep": "3"})
    assert answer.status_code == 504
    assert "did not answer within 1 s" in answer.json()["error"]
    assert answer.headers["X-Model-Version"] == "1"
    assert client.get("/rollout").json()["totals"]["1"]["errors"] >= 1


def test_an_unreachable_model_server_gets_502():
    router = Router(model_name="m", params=PARAMS)
    router.stable = Upstream(version="7", url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(router)) as client:
        answer = client.post("/invocations", json=GOOD)
    assert answer.status_code == 502 and "v7 could not be reached" in answer.json()["error"]


def test_nothing_served_yet_gets_503():
    with TestClient(create_app(Router(model_name="m", params=PARAMS))) as client:
        answer = client.post("/invocations", json=GOOD)
    assert answer.status_code == 503 and "no champion of `m`" in answer.json()["error"]


def test_canary_splits_by_request_id_and_one_id_always_sees_one_version(backends: dict[str, Running]):
    params = dataclasses.replace(PARAMS, mode="canary", canary_steps=(0.3, 1.0))
    router = make_router(backends, params=params, candidate=True)
    ids = [f"client-{i}" for i in range(300)]
    with TestClient(create_app(router)) as client:
        versions = {i: client.post("/invocations", json=GOOD, headers={"X-Request-Id": i}).headers for i in ids}
        again = {i: client.post("/invocations", json=GOOD, headers={"X-Request-Id": i}).headers for i in ids[:50]}
    assert all(again[i]["X-Model-Version"] == versions[i]["X-Model-Version"] for i in again)
    assert all((versions[i]["X-Model-Version"] == "2") == (bucket(i) < 0.3) for i in ids)
    share = sum(v["X-Model-Version"] == "2" for v in versions.values()) / len(ids)
    assert 0.2 < share < 0.4
    assert router.windows["2"].requests + router.windows["1"].requests == 350


def test_without_a_request_id_the_body_decides(backends: dict[str, Running]):
    params = dataclasses.replace(PARAMS, canary_steps=(0.5, 1.0))
    router = make_router(backends, params=params, candidate=True)
    with TestClient(create_app(router)) as client:
        bodies = [{"dataframe_split": {"columns": ["a", "b"], "data": [[i, i]]}} for i in range(40)]
        first = [client.post("/invocations", json=b).headers["X-Model-Version"] for b in bodies]
        second = [client.post("/invocations", json=b).headers["X-Model-Version"] for b in bodies]
    assert first == second and set(first) == {"1", "2"}


def test_shadow_returns_stable_and_scores_the_candidate_in_the_background(backends: dict[str, Running]):
    params = dataclasses.replace(PARAMS, mode="shadow")
    router = make_router(backends, params=params, candidate=True)
    assert router.shadow and router.share == 0.0
    with TestClient(create_app(router)) as client:
        answers = [client.post("/invocations", json=GOOD, headers={"X-Request-Id": str(i)}) for i in range(20)]
        deadline = time.monotonic() + 10
        while router.windows["2"].requests < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert {a.headers["X-Model-Version"] for a in answers} == {"1"}
    assert all(a.json()["predictions"][0][1] == pytest.approx(0.8) for a in answers)
    assert router.windows["2"].requests == 20 and router.windows["1"].requests == 20
    assert router.agreement is not None
    assert router.agreement.rows == 40 and router.agreement.agreeing == 0  # v2 predicts the other class


# -- the real server (uvicorn) with raw sockets: what a broken client really sends


@pytest.fixture(scope="module")
def proxy_url(backends: dict[str, Running]) -> Iterator[tuple[str, int]]:
    with serve_in_thread(create_app(make_router(backends)), config=server_config) as running:
        host, port = running.url.removeprefix("http://").split(":")
        yield host, int(port)


def raw(address: tuple[str, int], data: bytes, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """Sends raw bytes, returns the status and body of the answer (fails rather than hangs after `timeout`)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            None,
        )
        while length is not None and len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split(b" ")[1]), body


def post(length: str, body: bytes = b"") -> bytes:
    return (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("length", ["-5", "abc", "99999999999999999999999999"])
def test_a_broken_content_length_gets_a_4xx_and_never_hangs(proxy_url: tuple[str, int], length: str):
    status, body = raw(proxy_url, post(length, b'{"a": 1}'))
    assert status == 400 and "Content-Length" in json.loads(body)["error"], body


def test_a_huge_content_length_gets_413_before_any_body_is_sent(proxy_url: tuple[str, int]):
    status, body = raw(proxy_url, post(str(10**12)))
    assert status == 413 and "over the limit" in json.loads(body)["error"]


def test_a_body_that_never_arrives_gets_408(proxy_url: tuple[str, int]):
    status, body = raw(proxy_url, post("100", b'{"a": '))
    assert status == 408 and "did not arrive within 1 s" in json.loads(body)["error"]
