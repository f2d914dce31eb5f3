"""`python -m ml_assets.serving` with real MLflow model servers, a real Dagster webserver and one story.

v1 is served; v2 (raises on a share of rows) is rolled out as a canary and rolls back by itself; v3
(a different, healthy model) goes through shadow, where agreement is logged, then canary, then takes
all traffic; Ctrl-C stops everything. Every step reaches the `rollout` asset in Dagster; under
`make screenshots` the webserver's page of that history is pictured for the README. The tests run in
file order on one proxy (the model servers start once per module).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml

from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.browser import (
    CHROMIUM,
    NO_CHROMIUM,
    SHOTS_VARIABLE,
    chromium_page,
    mark_community_popup_seen,
    shots_folder,
    stack,
)

# The module-scoped rollout is shared by its tests in order: one pytest-xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serving_e2e")]

MODEL = "churn_classifier"
STARTUP_TIMEOUT = 180.0
CANARY_SHARE = 0.2
MARKER = "ML_ASSETS_SERVING_TEST"  # set only in the proxy's environment, which its model servers inherit
T = TypeVar("T")


@dataclass
class Answer:
    status: int
    version: str | None
    body: Any


@dataclass
class Served:
    url: str
    root: Path
    tracking_uri: str
    process: subprocess.Popen[bytes]
    log: Path
    dagster_home: Path
    dagster_url: str
    marker: str

    def tail(self) -> str:
        return self.log.read_text()[-5000:] if self.log.exists() else ""

    def rollout(self) -> dict[str, Any]:
        return call(f"{self.url}/rollout").body

    def invoke(self, rows: list[list[float]], *, request_id: str) -> Answer:
        payload = {"dataframe_split": {"columns": ["a", "b"], "data": rows}}
        return call(f"{self.url}/invocations", payload, headers={"X-Request-Id": request_id})

    def reports(self) -> list[dict[str, Any]]:
        """The `rollout` materializations Dagster recorded, oldest first, as plain metadata."""
        with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
            records = instance.fetch_materializations(dg.AssetKey("rollout"), limit=1000, ascending=True).records
            return [
                {k: v.value for k, v in r.asset_materialization.metadata.items()}
                for r in records
                if r.asset_materialization is not None
            ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, payload: Any = None, *, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers.get("X-Model-Version"), json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("X-Model-Version"), json.loads(error.read() or b"null"))


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, served: Served | None = None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served is not None and served.process.poll() is not None:
            raise AssertionError(f"the proxy exited with {served.process.returncode}:\n{served.tail()}")
        with contextlib.suppress(OSError):
            value = probe()
            if value:
                return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + (served.tail() if served else ""))


def children_of(marker: str) -> list[int]:
    """Pids of the processes whose environment carries `marker` (the proxy and the model servers it started)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"{MARKER}={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def log_versions(tracking_uri: str) -> None:
    """Registers v1 (healthy), v2 (raises on odd `a`) and v3 (healthy, other weights) of `MODEL`.

    In a child process: MLflow's fluent API keeps its URIs process-wide (and exports them to children).
    """
    code = f"from ml_assets_tests.e2e.models import register_versions; register_versions({tracking_uri!r}, {MODEL!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def set_champion(tracking_uri: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
        MODEL, "champion", version
    )


def edit_serving(root: Path, **changes: Any) -> None:
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["serving"].update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("serving")
    root, home = base / "project", base / "dagster_home"
    root.mkdir()
    home.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    (root / ".mlflow").mkdir()
    shutil.copy(mlflow_template, root / ".mlflow" / "mlflow.db")
    tracking_uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    edit_serving(
        root,
        mode="canary",
        canary_steps=[CANARY_SHARE, 1.0],
        step_seconds=2,
        min_requests_per_step=30,
        max_error_rate=0.05,
        max_p99_latency_ratio=50.0,  # a busy CI machine must not roll a healthy version back on latency
        backend_timeout_seconds=20,
    )
    env = {
        **os.environ,
        "ML_ASSETS_ROOT": str(root),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DAGSTER_HOME": str(home),
        "GX_ANALYTICS_ENABLED": "false",
    }
    dagster_port, port = free_port(), free_port()
    env["DAGSTER_WEBSERVER_URL"] = f"http://127.0.0.1:{dagster_port}"
    webserver_log = base / "dagster_webserver.log"
    with webserver_log.open("w") as out:
        command = [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1"]
        command += ["-p", str(dagster_port), "-m", "ml_assets.definitions"]
        webserver = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log = base / "serving.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        log_versions(tracking_uri)  # while the webserver starts
        set_champion(tracking_uri, "1")
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "ml_assets.serving", "--port", str(port), "--poll-seconds", "0.5"],
                cwd=REPO,
                env={**env, MARKER: str(base)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Served(
            f"http://127.0.0.1:{port}",
            root,
            tracking_uri,
            process,
            log,
            home,
            dagster_url=env["DAGSTER_WEBSERVER_URL"],
            marker=str(base),
        )

        def webserver_up() -> bool:
            if webserver.poll() is not None:
                raise AssertionError(f"dagster-webserver exited:\n{webserver_log.read_text()[-3000:]}")
            with urllib.request.urlopen(f"{env['DAGSTER_WEBSERVER_URL']}/server_info", timeout=2) as answer:
                return answer.status == 200

        wait_for("the Dagster webserver", webserver_up, timeout=STARTUP_TIMEOUT)
        yield server
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        for pid in children_of(str(base)):  # only what this module started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(webserver.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            webserver.wait(timeout=20)


def test_the_champion_is_served_and_malformed_requests_get_a_4xx_with_a_message(served: Served):
    first = wait_for(
        "v1 to answer",
        lambda: (a := served.invoke([[2, 0.5]], request_id="first")).status == 200 and a,
        timeout=STARTUP_TIMEOUT,
        served=served,
    )
    assert first.version == "1"
    assert first.body["predictions"][0][1] == pytest.approx(1 / (1 + 2.718281828459045 ** -(0.3 * 2 + 0.5)))

    bad_json = call(f"{served.url}/invocations", raw=b'{"dataframe_split": {"columns": ')
    assert bad_json.status == 400 and bad_json.version == "1" and bad_json.body["message"], bad_json
    missing = call(f"{served.url}/invocations", {"dataframe_split": {"columns": ["a"], "data": [[1]]}})
    assert missing.status == 400 and "b" in missing.body["message"], missing
    host, port = served.url.removeprefix("http://").split(":")

    def raw(head: bytes, body: bytes = b"") -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head)
            with contextlib.suppress(OSError):  # the proxy may answer and close before the body is all sent
                sock.sendall(body)
            received = b""
            while not received.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            return received

    oversize = raw(b"Content-Length: 1048577\r\n\r\n", b"x" * 1_048_577)
    assert oversize.startswith(b"HTTP/1.1 413") and b"over the limit" in oversize
    negative = raw(b"Content-Length: -1\r\n\r\n")
    assert negative.startswith(b"HTTP/1.1 400") and b'"error"' in negative

    status = served.rollout()
    assert status["version"] == "1" and status["candidate_version"] is None and status["model"] == MODEL


def test_a_faulty_canary_rolls_back_and_clients_see_no_more_than_its_share_of_errors(served: Served):
    set_champion(served.tracking_uri, "2")
    wait_for(
        "v2's canary", lambda: served.rollout()["candidate_version"] == "2", timeout=STARTUP_TIMEOUT, served=served
    )
    rng = random.Random(7)
    answers: list[Answer] = []

    def send(n: int) -> None:
        for _ in range(n):
            i = len(answers)
            answers.append(served.invoke([[rng.randint(0, 9), rng.uniform(-1, 1)]], request_id=f"client-{i}"))

    deadline = time.monotonic() + 120
    while "2" not in served.rollout()["failed_versions"] and time.monotonic() < deadline:
        send(10)
    assert "2" in served.rollout()["failed_versions"], served.tail()
    rolled_back_after = len(answers)
    send(100)

    # MLflow's scoring server answers an exception in `predict` with 400, so the rejection guardrail
    # (the candidate's 4xx beyond stable's) is the one that catches a model that raises
    errors = [a for a in answers if a.status != 200]
    assert errors, "the faulty version never answered: the test proved nothing"
    assert {a.version for a in errors} == {"2"}
    assert "injected fault" in json.dumps(errors[0].body)
    assert len(errors) / len(answers) <= CANARY_SHARE, (len(errors), len(answers))
    assert {(a.status, a.version) for a in answers[rolled_back_after:]} == {(200, "1")}
    status = served.rollout()
    assert status["version"] == "1" and status["candidate_version"] is None and status["share"] == 0.0
    [event] = [h for h in status["history"] if h["verdict"] == "rolled_back"]
    assert event["candidate_version"] == "2" and "rejection_rate" in event["reason"]

    reports = wait_for(
        "Dagster to record the rollback",
        lambda: (r := served.reports()) and r[-1]["verdict"] == "rolled_back" and r,
        timeout=30,
    )
    assert [r["verdict"] for r in reports] == ["serving", "started", "rolled_back"]
    assert reports[-1]["candidate_version"] == "2" and reports[-1]["stable_version"] == "1"
    assert reports[-1]["candidate_rejected"] >= 1 and reports[-1]["guardrail_rejection_rate_passed"] is False
    assert reports[1]["candidate_share"] == CANARY_SHARE


def test_shadow_logs_agreement_then_a_healthy_version_is_promoted(served: Served):
    edit_serving(served.root, mode="shadow")  # read again when the next rollout starts
    set_champion(served.tracking_uri, "3")
    wait_for(
        "v3 in shadow", lambda: served.rollout()["candidate_version"] == "3", timeout=STARTUP_TIMEOUT, served=served
    )
    assert served.rollout()["shadow"] is True
    rng = random.Random(11)
    seen: list[Answer] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = served.rollout()
        if status["version"] == "3":
            break
        shadowing = status["shadow"]
        for _ in range(10):
            answer = served.invoke([[rng.randint(0, 9), rng.uniform(-1, 1)]], request_id=f"s-{len(seen)}")
            seen.append(answer)
            assert answer.status == 200, answer
            if shadowing and served.rollout()["shadow"]:
                assert answer.version == "1"  # in shadow, clients only ever get stable's answer
    status = served.rollout()
    assert status["version"] == "3" and status["candidate_version"] is None, served.tail()
    assert served.invoke([[4, 0.1]], request_id="after").version == "3"

    verdicts = [h["verdict"] for h in status["history"]]
    assert verdicts[-3:] == ["started", "widened", "promoted_full"]
    widened = next(h for h in status["history"] if h["verdict"] == "widened")
    assert widened["agreement_rows"] >= 30 and 0.0 <= widened["agreement"] <= 1.0
    assert widened["candidate_share"] == CANARY_SHARE and widened["candidate_requests"] >= 30

    reports = wait_for(
        "Dagster to record the promotion",
        lambda: (r := served.reports()) and r[-1]["verdict"] == "promoted_full" and r,
        timeout=30,
    )
    shadow_step = next(r for r in reports if r["verdict"] == "widened")
    assert shadow_step["candidate_version"] == "3" and "agreement" in shadow_step
    assert reports[-1]["candidate_share"] == 1.0 and reports[-1]["candidate_version"] == "3"
    state = json.loads((served.root / ".serving" / "rollout.json").read_text())
    assert state["stable_version"] == "3" and "2" in state["failed_versions"]


def test_the_rollout_history_is_pictured_from_the_dagster_ui_for_the_readme(served: Served, tmp_path: Path):
    """`rollout.png`: the Events tab on v2's rollback (every step listed), above the plot of `candidate_share`.

    Only under `make screenshots` (`$ML_ASSETS_SCREENSHOTS` set) with chromium: otherwise skipped at once.
    """
    if not os.environ.get(SHOTS_VARIABLE) or CHROMIUM is None:
        pytest.skip(f"only for `make screenshots` (${SHOTS_VARIABLE}), with chromium" if CHROMIUM else NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with dg.DagsterInstance.from_config(str(served.dagster_home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("rollout"), limit=1000, ascending=True).records
    steps = {r.timestamp: r.asset_materialization for r in records if r.asset_materialization}
    [rolled_back_at] = [when for when, step in steps.items() if step.metadata["verdict"].value == "rolled_back"]
    asset_page = f"{served.dagster_url}/assets/rollout"

    mark_community_popup_seen(served.dagster_url)
    shots_folder().mkdir(parents=True, exist_ok=True)
    expect = sync_api.expect
    # wide: the plots share the page's width two by two, and a wide plot keeps its time axis legible
    wide = {"width": 2200, "height": 1000}
    with chromium_page(sync_api, failure_png=tmp_path / "failure.png", viewport=wide) as page:
        page.goto(asset_page)
        page.get_by_text("Hide navigation").click()
        page.get_by_text("Plots", exact=True).click()
        title = page.get_by_text("candidate_share", exact=True).first
        plot = page.locator("div").filter(has=title).filter(has=page.locator("canvas")).last  # the innermost
        plot.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)  # the chart's drawing animation
        box = plot.bounding_box()
        assert box is not None
        plot_png = page.screenshot(clip={**box, "width": box["width"] - 8})  # not the next plot's edge

        # the event the UI opens from its timestamp (in ms) in the address, as a click in the list does
        page.set_viewport_size({"width": 960, "height": 652})  # down to `candidate_version`
        page.goto(f"{asset_page}?view=events&time={int(rolled_back_at * 1000)}")
        expect(page.get_by_text("rolled_back: rejection_rate", exact=False)).to_be_visible()
        expect(page.get_by_text("Loading", exact=False)).to_have_count(0)  # the list's "Loading…" toast
        events_png = page.screenshot(animations="disabled")

        stack(page, "rollout.png", [(events_png, 0), (plot_png, box["x"])])


def test_ctrl_c_stops_the_proxy_and_every_model_server_within_10_s(served: Served):
    assert children_of(served.marker), "nothing was running"
    began = time.monotonic()
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(timeout=10) == 0, served.tail()
    while children_of(served.marker) and time.monotonic() - began < 10:
        time.sleep(0.1)
    assert children_of(served.marker) == [], served.tail()
