"""`make bench`, scale-out section: `training_job` on the embedded profile and on the scale-out profile.

Both profiles run as `make dev` and `make dev-scale` run them (`python -m ml_assets.devserver`), each on
its own temporary project with the repository's `params.yaml` and demo data and on free ports. The
sensors validate the demo batches and start the first training run; a second, unchanged run is then
launched as the UI's button does (it trains nothing, so it is mostly orchestration). Figures come
from the runs' own event logs, so the start-up of the servers is not in them:

- wall time: RUN_START to RUN_SUCCESS;
- per-step hand-off overhead: for each step, from the executor handing it off (its first event:
  the multiprocess executor's "launching subprocess", the Celery executor's "submitting task") to
  STEP_START in the process that runs it (process start or task pick-up, instance and resources).

    python -m benchmarks.profiles [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from benchmarks.measure import Figure, Section, render

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2
failures: list[str] = []


@dataclass
class RunFigures:
    """What one training run's event log says."""

    wall: float
    handoff: list[float]
    steps: int
    success: bool


def run_figures(instance: dg.DagsterInstance, run_id: str) -> RunFigures:
    """Wall time and per-step hand-off overhead of a finished run, from its event log."""
    kind = dg.DagsterEventType
    events = list(instance.all_logs(run_id))
    run = {e.dagster_event.event_type: e.timestamp for e in events if e.dagster_event and not e.step_key}
    first: dict[str, float] = {}
    started: dict[str, float] = {}
    planned = {kind.ASSET_MATERIALIZATION_PLANNED, kind.ASSET_CHECK_EVALUATION_PLANNED}  # logged at launch
    for event in events:
        if event.step_key and event.dagster_event and event.dagster_event.event_type not in planned:
            first.setdefault(event.step_key, event.timestamp)
            if event.dagster_event and event.dagster_event.event_type == kind.STEP_START:
                started.setdefault(event.step_key, event.timestamp)
    handoff = [started[key] - first[key] for key in started]
    end = run.get(kind.RUN_SUCCESS) or run.get(kind.RUN_FAILURE) or max(e.timestamp for e in events)
    return RunFigures(
        wall=end - run[kind.RUN_START], handoff=handoff, steps=len(started), success=kind.RUN_SUCCESS in run
    )


def new_project(base: Path) -> Path:
    """A project root with the repository's params (sensors ticking every 3 s), dvc.yaml, GX suite and demo data."""
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import write_demo_batches

    root = base / "project"
    root.mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["automation"] = {"landing_interval_seconds": 3, "retrain_interval_seconds": 3}
    # The latency gate is unit-tested; on a busy bench machine it must not stop the run being timed.
    raw["gates"]["max_p95_latency_ms"] = 1000.0
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    demo = load_params(root / "params.yaml").demo
    write_demo_batches(
        root / "data" / "landing",
        batches=demo.batches,
        rows_per_batch=demo.rows_per_batch,
        seed=demo.seed,
        start_date=dt.date.fromisoformat(demo.start_date),
    )
    return root


def bench_profile(profile: str, base: Path) -> tuple[RunFigures, RunFigures]:
    """Brings `profile` up on a fresh project; the first (sensor) and second (unchanged) training runs."""
    from ml_assets_tests.e2e.harness import devserver, free_ports, launch_job, wait_for

    root = new_project(base)
    state = base / "state"
    names = ["dagster", "mlflow", "docs", "grpc"] + (["postgres", "redis", "s3"] if profile == "scale" else [])
    ports = free_ports(*names)
    command = [sys.executable, "-m", "ml_assets.devserver", profile, "--root", str(root), "--state", str(state)]
    command += [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(base / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(base / "dvc_remote"),
    }
    if profile == "scale":
        command += ["--workers", str(WORKERS)]
    with devserver(command, state=state, env=env, cwd=root, timeout=600) as running:
        instance_env = {k: v for k, v in running.env.items() if k.startswith("DAGSTER_")}
        with _environment(instance_env):  # the instance's config reads these when it opens
            instance = dg.DagsterInstance.from_config(running.env["DAGSTER_HOME"])
        with instance:

            def training(run_id: str | None = None) -> dg.DagsterRun | None:
                runs = [r for r in instance.get_runs(dg.RunsFilter(job_name="training_job")) if r.is_finished]
                runs = [r for r in runs if run_id is None or r.run_id == run_id]
                return runs[0] if runs else None

            first = wait_for(f"{profile}: the sensors' first training run", training, timeout=900, every=2)
            second_id = launch_job(running.urls["webserver"], "training_job")
            wait_for(f"{profile}: the unchanged training run", lambda: training(second_id), timeout=600, every=1)
            return run_figures(instance, first.run_id), run_figures(instance, second_id)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bench_scale(base: Path) -> Section:
    """Both profiles, one after the other (2 cores: never at once)."""
    from ml_assets.lib.config import load_params

    params = load_params(REPO / "params.yaml")
    section = Section(
        f"training_job as launched runs, demo data {params.demo.batches} x {params.demo.rows_per_batch:,} rows: "
        f"embedded (in one process, SQLite) vs scale-out ({WORKERS} Celery workers, Postgres, "
        "MLflow server, S3)"
    )
    results = {}
    for profile in ("embedded", "scale"):
        print(f"[bench {time.strftime('%H:%M:%S')}] {profile} profile: start, ingest, train twice", file=sys.stderr)
        results[profile] = bench_profile(profile, base / profile)
    labels = {"embedded": "embedded, in-process", "scale": f"scale-out, {WORKERS} Celery workers"}
    for profile, (first, second) in results.items():
        for label, figures in (("first run (trains 3 candidates)", first), ("second run, unchanged", second)):
            ok = figures.success
            if not ok:
                failures.append(f"{profile} {label} did not succeed")
            section.figures.append(
                Figure(
                    f"{labels[profile]}: {label}: wall",
                    [figures.wall],
                    note=f"{figures.steps} steps; {'ok' if ok else 'FAILED'}",
                )
            )
            section.figures.append(
                Figure(
                    f"{labels[profile]}: {label}: per-step hand-off",
                    figures.handoff,
                    note="executor hands the step off -> STEP_START in the process that runs it",
                )
            )
    embedded, scale = results["embedded"][1], results["scale"][1]
    if embedded.handoff and scale.handoff:
        extra = statistics.median(scale.handoff) - statistics.median(embedded.handoff)
        section.figures.append(
            Figure("scale-out minus embedded: median per-step hand-off", value=f"{extra * 1e3:+.0f} ms")
        )
    return section


def main(argv: list[str] | None = None) -> int:
    """Runs the section in a temp folder and prints its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiles", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs of every server)")
    args = parser.parse_args(argv)
    from ml_assets.devserver import DevServerError, postgres_bin

    try:
        postgres_bin()
    except DevServerError as error:
        print(f"scale-out section skipped: {error}")
        return 0
    # Postgres runs as the `postgres` user when this runs as root: its folder must be reachable.
    base = Path(tempfile.mkdtemp(prefix="ml_assets_bench_scale_"))
    base.chmod(0o755)
    try:
        section = bench_scale(base)
    except Exception as error:  # the table says what broke instead of a traceback
        section = Section("training_job on both profiles", error=f"{type(error).__name__}: {error}"[:400])
        failures.append(section.error or "")
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(render([section]))
    for failure in failures:
        print(f"  BROKEN: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
