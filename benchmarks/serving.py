"""`make bench` serving section: throughput and latency through the rollout proxy vs MLflow's own server.

One run, one machine, one model (a scikit-learn pipeline on the demo churn features, registered three
times so shadow and canary have a candidate identical to stable). Each figure sends the same requests
(one row each, a distinct `X-Request-Id`) from an aiohttp client with `CONCURRENCY` requests in flight:

1. MLflow's scoring server called directly (`mlflow models serve`): the baseline;
2. the proxy with the champion alone;
3. the proxy in a shadow step (every request also scored by the candidate, in the background);
4. the proxy in a canary step at 50%.

    python -m benchmarks.serving      # this section alone; `python -m benchmarks.run` runs it with the others
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import Figure, Section, render

REPO = Path(__file__).resolve().parents[1]
MODEL = "bench_classifier"
CONCURRENCY = 8
REQUESTS = 1000
WARMUP = 50
STARTUP_TIMEOUT = 300.0


def progress(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def register_versions(tracking_uri: str) -> None:
    """Trains one pipeline on demo data and registers it three times (in a child process, like training)."""
    import datetime as dt

    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from ml_assets.lib import tracking
    from ml_assets.lib.demo_data import generate_batch
    from ml_assets.lib.features import build_preprocessor, infer_feature_spec

    frame = generate_batch(n_rows=2000, seed=7, batch_date=dt.date(2026, 11, 1))
    spec = infer_feature_spec(frame, target="churned", id_columns=("customer_id",))
    features = list(spec.features)
    # the champion's shape: the project's preprocessing (impute, scale, one-hot) before the estimator
    model = Pipeline([("preprocess", build_preprocessor(spec)), ("model", LogisticRegression(max_iter=1000))])
    model.fit(frame[features], frame["churned"])
    # logged and registered the way the project registers its champion
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    artifacts = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    experiment = tracking.ensure_experiment(client, "serving_bench", artifact_root=artifacts)
    for i in range(3):
        logged = tracking.log_sklearn_model(
            tracking_uri=tracking_uri,
            experiment_id=experiment,
            run_name=f"bench_{i}",
            model=model,
            params={},
            metrics={},
            tags={},
            input_example=frame[features].head(5),
        )
        tracking.register_version(
            client, model_name=MODEL, model_uri=logged.model_uri, run_id=logged.run_id, tags={}, description="bench"
        )
    (Path(tracking_uri.removeprefix("sqlite:///")).parent / "payload.json").write_text(
        frame[features].head(50).to_json(orient="split", index=False)
    )


@dataclass
class Load:
    """What one load run measured."""

    seconds: float
    latencies: list[float]
    errors: int
    versions: dict[str, int]

    @property
    def throughput(self) -> float:
        """Answers per second."""
        return len(self.latencies) / self.seconds

    def quantile(self, q: float) -> float:
        """The `q` latency quantile in seconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(url: str, rows: list[dict[str, Any]], *, n: int, concurrency: int, prefix: str) -> Load:
    import aiohttp

    latencies: list[float] = []
    versions: dict[str, int] = {}
    errors = 0
    counter = iter(range(n))
    bodies = [json.dumps({"dataframe_split": row}).encode() for row in rows]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                headers = {"Content-Type": "application/json", "X-Request-Id": f"{prefix}-{i}"}
                began = time.perf_counter()
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as answer:
                    await answer.read()
                    latencies.append(time.perf_counter() - began)
                    if answer.status != 200:
                        errors += 1
                    version = answer.headers.get("X-Model-Version", "direct")
                    versions[version] = versions.get(version, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Load(time.perf_counter() - began, latencies, errors, versions)


def load(url: str, rows: list[dict[str, Any]], *, prefix: str) -> Load:
    """Warms up, then sends `REQUESTS` one-row requests with `CONCURRENCY` in flight."""
    asyncio.run(_load(url, rows, n=WARMUP, concurrency=CONCURRENCY, prefix=f"warm-{prefix}"))
    return asyncio.run(_load(url, rows, n=REQUESTS, concurrency=CONCURRENCY, prefix=prefix))


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float = STARTUP_TIMEOUT) -> Any:
    """Polls `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def get_json(url: str) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def bench_serving(base: Path, *, say: Callable[[str], None] = progress) -> Section:
    """The serving section: see the module docstring (`say` prints progress lines)."""
    from mlflow import MlflowClient

    from ml_assets.serving.backends import free_port, start_backend, stop_backend

    section = Section(
        f"Serving: {REQUESTS:,} one-row requests, {CONCURRENCY} in flight, aiohttp client (proxy vs MLflow's server)"
    )
    root = base / "serving_project"
    (root / ".mlflow").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    tracking_uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"ML_ASSETS_ROOT": str(root), "MLFLOW_TRACKING_URI": tracking_uri, "DAGSTER_WEBSERVER_URL": ""})
    say("serving: training and registering the bench model (3 versions)")
    code = f"from benchmarks.serving import register_versions; register_versions({tracking_uri!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"registering the bench model failed: {done.stderr[-1500:]}")
    payload = json.loads((root / ".mlflow" / "payload.json").read_text())
    rows = [{"columns": payload["columns"], "data": [row]} for row in payload["data"]]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def edit_serving(**changes: Any) -> None:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["registry"]["model_name"] = MODEL
        raw["serving"].update(changes)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    # MLflow's server stays up the whole time and is measured right before each proxy figure, so a
    # busy moment of the machine hits a pair alike; each ratio is against its own pair's direct run.
    results: dict[str, tuple[Load, Load]] = {}
    say("serving: starting MLflow's scoring server (called directly) and the proxy")
    direct = start_backend(MODEL, "1", tracking_uri=tracking_uri, env=env)
    # held steps: a long step that never reaches its minimum sample, so the split stays put while measured
    edit_serving(mode="shadow", canary_steps=[0.5, 1.0], step_seconds=3600, min_requests_per_step=10**9)
    client.set_registered_model_alias(MODEL, "champion", "1")
    port = free_port()
    log = base / "serving_bench.log"
    with log.open("w") as out:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "ml_assets.serving", "--port", str(port), "--poll-seconds", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def pair(key: str) -> None:
        say(f"serving: {key}, direct then through the proxy")
        results[key] = (
            load(f"{direct.url}/invocations", rows, prefix=f"direct-{key}"),
            load(f"{url}/invocations", rows, prefix=key),
        )

    shadow_status: dict[str, Any] = {}
    try:
        wait_for("MLflow's model server", lambda: urllib.request.urlopen(f"{direct.url}/ping", timeout=2).status == 200)
        wait_for("the proxy on v1", lambda: get_json(f"{url}/rollout")["version"] == "1")
        pair("alone")

        client.set_registered_model_alias(MODEL, "champion", "2")
        wait_for("v2 in shadow", lambda: (s := get_json(f"{url}/rollout"))["candidate_version"] == "2" and s["shadow"])
        pair("shadow")
        shadow_status = get_json(f"{url}/rollout")

        edit_serving(mode="canary")
        client.set_registered_model_alias(MODEL, "champion", "3")
        wait_for("v3 in canary", lambda: get_json(f"{url}/rollout")["candidate_version"] == "3")
        pair("canary")
    finally:
        proxy.send_signal(signal.SIGINT)
        try:
            proxy.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proxy.kill()
        stop_backend(direct)

    directs = [d for d, _ in results.values()]
    if directs:
        middle = sorted(directs, key=lambda d: d.throughput)[len(directs) // 2]
        section.figures.append(
            Figure(
                "MLflow's scoring server, direct (baseline)",
                value=f"{middle.throughput:,.0f} req/s",
                note=f"p50 {middle.quantile(0.5) * 1e3:.1f} ms, p99 {middle.quantile(0.99) * 1e3:.1f} ms "
                f"(median of {len(directs)} runs, one before each proxy figure: "
                + ", ".join(f"{d.throughput:,.0f}" for d in directs)
                + " req/s)",
            )
        )
    labels = {
        "alone": "proxy, champion alone",
        "shadow": "proxy, shadow step (every request mirrored)",
        "canary": "proxy, canary step at 50%",
    }
    for key, label in labels.items():
        if key not in results:
            continue
        before, result = results[key]
        note = (
            f"p50 {result.quantile(0.5) * 1e3:.1f} ms, p99 {result.quantile(0.99) * 1e3:.1f} ms; vs the direct run "
            f"before it: throughput x{result.throughput / before.throughput:.2f}, "
            f"p50 x{result.quantile(0.5) / before.quantile(0.5):.2f}, "
            f"p99 x{result.quantile(0.99) / before.quantile(0.99):.2f}; errors {result.errors}; "
            f"answered by {_versions(result.versions)}"
        )
        section.figures.append(Figure(label, value=f"{result.throughput:,.0f} req/s", note=note))
    step = shadow_status.get("step", {})
    if "agreement" in step:
        section.figures.append(
            Figure(
                "  shadow agreement (identical candidate)",
                value=f"{step['agreement']:.3f}",
                note=f"{step.get('agreement_rows', 0):,} rows compared; {step.get('shadow_busy', 0)} requests not "
                f"mirrored (candidate busy: shadow_max_in_flight), {step.get('shadow_skipped', 0)} not comparable",
            )
        )
    return section


def _versions(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{'v' + k if k != 'direct' else k} {n}" for k, n in sorted(counts.items()))


def main() -> int:
    """Runs this section alone in a temp folder and prints it."""
    base = Path(tempfile.mkdtemp(prefix="ml_assets_bench_serving_"))
    try:
        section = bench_serving(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(render([section]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
