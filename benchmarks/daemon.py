"""The daemon path: batches landed under `dagster dev` -> promoted champion, against the same training in process.

A fresh project runs the real `dagster dev` (webserver, daemon, code server) with the repository's
params.yaml and dagster.yaml, as `make dev` does. Once the daemon is up, 4 demo batches land and
the clock runs until `champion_model` is materialized; the runs' records say where the time went
(sensor pick-up, ingest runs, the retrain decision, queue and launch, the training run, and inside
it the start of the first step). Then a second fresh project with the same files ingests them in
process and times `training_job.execute_in_process`: the daemon-launched training run against it.

    python -m benchmarks.daemon --in-process ROOT   (the in-process reference, run as a child)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.measure import Figure, Section
from benchmarks.scale import REPO, make_project, run_child

DAEMON_BATCHES, DAEMON_ROWS = 4, 1_500
"""6,000 rows, as in the issue's figure."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, probe: Callable[[], Any], *, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _land(landing: Path) -> list[Path]:
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import write_demo_batches

    demo = load_params(REPO / "params.yaml").demo
    return write_demo_batches(
        landing,
        batches=DAEMON_BATCHES,
        rows_per_batch=DAEMON_ROWS,
        seed=demo.seed,
        start_date=dt.date.fromisoformat(demo.start_date),
    )


def _step_timing(instance: Any, run_id: str) -> tuple[float, float]:
    """Seconds from the run's start to its first step's start, and the steps' summed own time."""
    import dagster as dg

    starts: dict[str, float] = {}
    own = 0.0
    run_start = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.RUN_START:
            run_start = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_START and event.step_key:
            starts[event.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in starts:
            own += entry.timestamp - starts[event.step_key]
    first = min(starts.values()) - run_start if starts and run_start else float("nan")
    return first, own


def read_phases(instance: Any, *, landed_at: float, launched_by: str) -> dict[str, Any]:
    """Where the time went between `landed_at` and the champion, from the instance's run records."""
    import dagster as dg

    [training, *_] = [
        r for r in instance.get_run_records(dg.RunsFilter(job_name="training_job")) if r.dagster_run.is_finished
    ]
    event = instance.get_latest_materialization_event(dg.AssetKey("champion_model"))
    done_at = event.timestamp if event is not None else (training.end_time or time.time())
    ingest = list(instance.get_run_records(dg.RunsFilter(job_name="ingest_batch_job")))
    failed_checks = [
        f"{e.asset_key.to_user_string()}.{e.check_name}"
        for r in instance.get_records_for_run(
            training.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        if r.event_log_entry.dagster_event is not None
        for e in [r.event_log_entry.dagster_event.event_specific_data]
        if e is not None and not e.passed  # type: ignore[union-attr]
    ]
    first_step, own = _step_timing(instance, training.dagster_run.run_id)
    ingest_walls = [r.end_time - r.start_time for r in ingest if r.start_time and r.end_time]
    return {
        "total": done_at - landed_at,
        "sensor_pickup": min(r.create_timestamp.timestamp() for r in ingest) - landed_at,
        "ingest_runs": max(r.end_time for r in ingest if r.end_time)
        - min(r.create_timestamp.timestamp() for r in ingest),
        "ingest_run_wall": sorted(ingest_walls)[len(ingest_walls) // 2] if ingest_walls else float("nan"),
        "ingest_count": len(ingest),
        "retrain_decision": training.create_timestamp.timestamp() - max(r.end_time for r in ingest if r.end_time),
        "queue_and_launch": (training.start_time or 0) - training.create_timestamp.timestamp(),
        "training_run": (training.end_time or 0) - (training.start_time or 0),
        "training_created_to_end": (training.end_time or 0) - training.create_timestamp.timestamp(),
        "first_step": first_step,
        "steps_own": own,
        "champion_after_run": done_at - (training.end_time or done_at),
        "promoted": event is not None,
        "launched_by": launched_by,
        "status": training.dagster_run.status.value,
        "failed_checks": failed_checks,
    }


def run_under_dagster_dev(folder: Path, *, progress: Callable[[str], None]) -> dict[str, Any]:
    """Lands the batches under a running `dagster dev`; returns the phase timings."""
    import dagster as dg

    from ml_assets.lib.config import load_params

    root, env = make_project(folder, landing=folder / "none")
    landing = root / load_params(root / "params.yaml").data.landing_dir
    port = _free_port()
    log = folder / "dagster_dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "ml_assets.definitions"],
            cwd=root,
            env={**env, "GX_ANALYTICS_ENABLED": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.perf_counter()

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait("the Dagster webserver", up, timeout=300)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            _wait(
                "the daemon's sensor and run-queue loops",
                lambda: {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats()),
                timeout=300,
            )
            boot = time.perf_counter() - started
            progress(f"daemon: dagster dev up in {boot:.0f} s; landing {DAEMON_BATCHES} x {DAEMON_ROWS:,} rows")
            landed_at = time.time()
            _land(landing)

            def ingested() -> bool:
                runs = instance.get_run_records(dg.RunsFilter(job_name="ingest_batch_job"))
                return len(runs) >= DAEMON_BATCHES and all(r.dagster_run.is_finished for r in runs)

            _wait("the ingest runs", ingested, timeout=1800, every=0.5)
            launched_by = "the retrain sensor"
            try:  # the sensor ticks every retrain_interval_seconds; give it a few ticks
                _wait(
                    "the retrain sensor's training run",
                    lambda: instance.get_runs(dg.RunsFilter(job_name="training_job")),
                    timeout=3 * load_params(root / "params.yaml").automation.retrain_interval_seconds + 20,
                )
            except TimeoutError:
                from dagster_graphql import DagsterGraphQLClient

                DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution("training_job")
                launched_by = "the bench through the UI's GraphQL API (the retrain sensor requested none)"
                progress(f"daemon: the retrain sensor requested no training run; launched it as {launched_by}")

            def trained() -> list[Any]:
                runs = instance.get_run_records(dg.RunsFilter(job_name="training_job"))
                return [r for r in runs if r.dagster_run.is_finished]

            _wait("a finished training run", trained, timeout=1800, every=0.5)
            return {"boot": boot, **read_phases(instance, landed_at=landed_at, launched_by=launched_by)}
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def in_process(root: Path) -> dict[str, float]:
    """Ingests the landed files in process, then times `training_job.execute_in_process` (run in a child)."""
    import dagster as dg

    from ml_assets.cli import QUIET, ingest_new_batches, landed_files, prepare
    from ml_assets.definitions import defs
    from ml_assets.lib.config import load_params

    params = load_params(root / "params.yaml")
    prepare(root, params)
    with dg.DagsterInstance.get() as instance:
        begin = time.perf_counter()
        landing = root / params.data.landing_dir
        # the bench landed these files whole: no settling wait (as for make run's own demo batches)
        ingest_new_batches(defs, instance, landing, params=params, fresh=landed_files(landing))
        ingest = time.perf_counter() - begin
        begin = time.perf_counter()
        result = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET
        )
        training = time.perf_counter() - begin
    if not result.success:
        raise RuntimeError("the in-process training run failed")
    return {"ingest": ingest, "training": training}


def bench_daemon(base: Path, *, expect: Callable[[bool, str], str], progress: Callable[[str], None]) -> Section:
    """Landed -> champion under `dagster dev`, and the daemon's training run against the same in process."""
    section = Section(
        f"Daemon path: {DAEMON_BATCHES} x {DAEMON_ROWS:,} rows landed under `dagster dev` (repo params.yaml and "
        "dagster.yaml) -> champion"
    )
    base.mkdir(parents=True, exist_ok=True)
    progress("daemon: starting dagster dev on a fresh project")
    phases = run_under_dagster_dev(base / "dev", progress=progress)
    progress("daemon: the same batches and training in process")
    landing = base / "landing"
    _land(landing)
    root, env = make_project(base / "in_process", landing)
    out = base / "in_process.json"
    run_child(["benchmarks.daemon", "--in-process", str(root), "--json", str(out)], env=env, cwd=root)
    reference = json.loads(out.read_text())
    ratio = phases["training_created_to_end"] / reference["training"]
    section.figures += [
        Figure(
            "landed -> promoted champion",
            [phases["total"]],
            note=f"dagster dev came up in {phases['boot']:.0f} s before (not counted); training run "
            f"{phases['status']} {phases['failed_checks'] or ''}: "
            f"{expect(phases['promoted'], 'daemon path promoted a champion')}",
        ),
        Figure("  landing sensor picks the files up", [phases["sensor_pickup"]], note="first ingest run created"),
        Figure(
            f"  {phases['ingest_count']} ingest runs (created -> last finished)",
            [phases["ingest_runs"]],
            note=f"one run's own wall {phases['ingest_run_wall']:.1f} s (median); a process each",
        ),
        Figure(
            "  training run requested",
            [phases["retrain_decision"]],
            note=f"last ingest finished -> run created, by {phases['launched_by']}",
        ),
        Figure("  training run queued and launched", [phases["queue_and_launch"]], note="created -> started"),
        Figure(
            "  training run",
            [phases["training_run"]],
            note=f"first step {phases['first_step']:.1f} s after the run started; steps' own time "
            f"{phases['steps_own']:.1f} s summed",
        ),
        Figure(
            "training_job launched by the daemon vs in process",
            value=f"{ratio:.2f}x",
            note=f"{phases['training_created_to_end']:.1f} s created -> finished vs {reference['training']:.1f} s "
            f"execute_in_process (goal <= 2x) {expect(ratio == ratio, 'daemon ratio measured')}",
        ),
        Figure("  the same ingest in process (4 batches, one process)", [reference["ingest"]]),
    ]
    shutil.rmtree(base, ignore_errors=True)
    return section


def main(argv: list[str] | None = None) -> int:
    """Command line of the in-process reference (a child of `make bench`)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.daemon")
    parser.add_argument("--in-process", type=Path, required=True, help="project root with landed files")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    args.json.write_text(json.dumps(in_process(args.in_process)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
