"""`make bench`: speed and memory figures of the sensor, the code location, validation, drift, the graph, serving.

Everything runs in a temporary folder (generated data, a Dagster test instance, a SQLite MLflow store, a
folder DVC remote) that is removed at the end; the repository's own stores are never touched. Each timing
is the median of several repetitions with min and max. See `benchmarks/README.md` for how to read them.

    python -m benchmarks.run [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dagster as dg

from benchmarks.evaluation import bench_evaluation
from benchmarks.measure import (
    Figure,
    Section,
    fmt_bytes,
    peak_rss_self,
    render,
    run_python_child,
    time_calls,
    traced_peak,
)
from benchmarks.serving import bench_serving

REPO = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SENSOR_FILES = 1000
SENSOR_ROWS = 50
NEW_FILES = 10
failures: list[str] = []  # broken invariants: the figure next to them means nothing


_console = {"stderr": sys.stderr}  # the real stderr while library output goes to the log


def progress(message: str) -> None:
    """A progress line on the terminal's stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=_console["stderr"], flush=True)


@contextmanager
def library_output_to(log: Path) -> Iterator[None]:
    """Sends everything written to file descriptors 1 and 2 (MLflow, DVC, Dagster, warnings) to `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with log.open("ab") as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        _console["stderr"] = console
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            _console["stderr"] = sys.stderr
            console.close()


def expect(ok: bool, what: str) -> str:
    """Records a broken invariant; returns a short verdict for the notes column."""
    if not ok:
        failures.append(what)
    return "ok" if ok else "FAILED"


def header() -> str:
    """Machine, versions and date."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        "ml_assets benchmarks (figures, not pass/fail tests; medians of n runs, with min and max)",
        f"date     {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine  {platform.platform()}, {os.cpu_count()} CPUs ({affinity} usable), {platform.machine()}",
        f"python   {platform.python_version()} ({sys.executable})",
        "versions "
        + ", ".join(f"{p} {version(p)}" for p in ("dagster", "mlflow", "great-expectations", "dvc", "scikit-learn")),
        f"commit   {commit}",
    ]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Keeps library logs and warnings out of the table."""
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("alembic", "mlflow", "dvc", "great_expectations", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- 1. landing sensor -------------------------------------------------------------------------------------------


def bench_landing_sensor(base: Path) -> Section:
    """First, steady and 10-new-file ticks of `landing_sensor` over 1,000 landed files."""
    from ml_assets.definitions import defs
    from ml_assets.defs.ingestion import landing_batches
    from ml_assets.defs.resources import ProjectResource
    from ml_assets.defs.sensors import landing_sensor
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import generate_batch
    from ml_assets.lib.landing import LandingState, list_landing

    section = Section(f"Landing sensor tick with {SENSOR_FILES:,} landed files ({SENSOR_ROWS} rows each)")
    root = base / "sensor_project"
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    landing = root / load_params(root / "params.yaml").data.landing_dir
    landing.mkdir(parents=True)
    start = dt.date(2020, 1, 1)

    def csv_bytes(i: int) -> bytes:
        frame = generate_batch(n_rows=SENSOR_ROWS, seed=i, batch_date=start + dt.timedelta(days=i))
        return frame.to_csv(index=False).encode()

    progress(f"writing {SENSOR_FILES:,} landed files")
    size = 0
    for i in range(SENSOR_FILES):
        data = csv_bytes(i)
        (landing / f"batch_{i:05d}.csv").write_bytes(data)
        size += len(data)
    new_reps = 5
    extra = [csv_bytes(SENSOR_FILES + i) for i in range(new_reps * NEW_FILES)]  # generated now, landed per tick

    (base / "sensor_dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(base / "sensor_dagster_home")) as instance:
        resources = {"project": ProjectResource(root=str(root))}

        def tick(cursor: str | None) -> dg.SensorResult:
            result = landing_sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
            )
            assert isinstance(result, dg.SensorResult)
            return result

        progress("landing sensor: first ticks")
        samples, first = time_calls(lambda: tick(None), repeat=5)
        n_requests = len(first.run_requests)
        section.figures.append(
            Figure(
                f"first tick: hash {SENSOR_FILES:,} files, request {SENSOR_FILES:,} runs",
                samples,
                note=f"{n_requests:,} run requests {expect(n_requests == SENSOR_FILES, 'first tick requests')}"
                f"; {fmt_bytes(size)} landed; page cache warm",
            )
        )
        peak = traced_peak(lambda: tick(None))
        section.figures.append(Figure("first tick: peak Python allocations", value=fmt_bytes(peak), note="tracemalloc"))
        cursor = first.cursor or ""
        section.figures.append(
            Figure(f"cursor size after {SENSOR_FILES:,} files", value=f"{len(cursor.encode()):,} B", note="JSON")
        )
        # What the daemon does with the result: the partitions exist from now on.
        instance.add_dynamic_partitions(landing_batches.name, [r.partition_key for r in first.run_requests])

        progress("landing sensor: steady ticks")
        samples, steady = time_calls(lambda: tick(cursor), repeat=21, warmup=2)
        section.figures.append(
            Figure(
                "steady tick: nothing new (stat only)",
                samples,
                note=f"{len(steady.run_requests)} run requests {expect(not steady.run_requests, 'steady tick')}",
            )
        )

        project = resources["project"]
        parts = {
            "project.params(): parse params.yaml": project.params,
            f"list_landing: {SENSOR_FILES:,} stats": lambda: list_landing(landing),
            "LandingState.from_json + to_json (the cursor)": lambda: LandingState.from_json(cursor).to_json(),
            f"instance.get_dynamic_partitions ({SENSOR_FILES:,})": lambda: instance.get_dynamic_partitions(
                landing_batches.name
            ),
        }
        for label, part in parts.items():
            samples, _ = time_calls(part, repeat=21, warmup=2)
            section.figures.append(Figure(f"  steady tick part: {label}", samples, note="measured alone"))

        progress(f"landing sensor: ticks after {NEW_FILES} new files")
        samples, counts = [], []
        for rep in range(new_reps):
            for j in range(NEW_FILES):
                k = rep * NEW_FILES + j
                (landing / f"batch_{SENSOR_FILES + k:05d}.csv").write_bytes(extra[k])
            begin = time.perf_counter()
            result = tick(cursor)
            samples.append(time.perf_counter() - begin)
            counts.append(len(result.run_requests))
            cursor = result.cursor or ""
            instance.add_dynamic_partitions(landing_batches.name, [r.partition_key for r in result.run_requests])
        section.figures.append(
            Figure(
                f"tick after {NEW_FILES} new files land",
                samples,
                note=f"run requests {sorted(set(counts))} {expect(set(counts) == {NEW_FILES}, 'new-file tick')}",
            )
        )
    return section


# -- 2. code location load ---------------------------------------------------------------------------------------


def bench_code_location(env: dict[str, str]) -> Section:
    """Fresh-interpreter import of the code location, and of bare dagster as the floor."""
    section = Section("Code location load (fresh subprocess each time)")
    commands = {
        "import dagster (the floor)": "import dagster",
        "import ml_assets.definitions": "import ml_assets.definitions",
    }
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    progress("code location: 5 x 2 fresh interpreters")
    for _ in range(5):  # interleaved, so a noisy moment hits both
        for name, code in commands.items():
            results[name].append(run_python_child(code, env=env, cwd=REPO))
    for name, runs in results.items():
        rss = sorted(r for _, r in runs)[len(runs) // 2]
        section.figures.append(Figure(name, [t for t, _ in runs], note=f"child peak RSS {fmt_bytes(rss)} (median)"))
    return section


# -- 3. batch validation -----------------------------------------------------------------------------------------


def bench_validation(base: Path) -> Section:
    """Great Expectations import, then the committed suite on a 1,200-row demo batch: bare, and as the checks run it."""
    import pandas as pd  # noqa: F401  (loaded first: the GX import figure is GX's own share)

    from ml_assets.lib import validation
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import generate_batch
    from ml_assets.lib.snapshot import read_landed_batch
    from ml_assets.lib.suite_inference import InferenceSpec

    section = Section("Batch validation (Great Expectations 1.x, the gx/ project's checkpoint)")
    already = "great_expectations" in sys.modules
    progress("validation: importing great_expectations")
    begin = time.perf_counter()
    import great_expectations as gx

    section.figures.append(
        Figure(
            "import great_expectations (in-process, once)",
            [time.perf_counter() - begin],
            note="already imported: not a real figure" if already else "pandas and dagster already loaded",
        )
    )
    path = base / "validation_batch.csv"
    generate_batch(n_rows=1200, seed=7, batch_date=dt.date(2026, 11, 1)).to_csv(path, index=False)
    frame = read_landed_batch(path)
    params = load_params(REPO / "params.yaml")
    root = base / "gx_project"
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    spec = InferenceSpec.from_params(params)
    runs = iter(range(10_000))

    def checkpoint_run() -> validation.ValidationReport:
        name = f"{next(runs)}_{path.name}"
        return validation.validate_batch(
            frame, root=root, suite_path=params.validation.suite_path, batch_name=name, spec=spec
        )

    progress("validation: baseline, the suite alone in an ephemeral context (no stores, no Data Docs)")
    suite = validation.open_context(str(root.resolve())).suites.get("landed_batch")
    context = gx.get_context(mode="ephemeral")
    batches = (
        context.data_sources.add_pandas("bench").add_dataframe_asset("b").add_batch_definition_whole_dataframe("w")
    )
    bare, result = time_calls(
        lambda: batches.get_batch(batch_parameters={"dataframe": frame}).validate(suite), repeat=5, warmup=1
    )
    section.figures.append(
        Figure(f"baseline: batch.validate(suite), {len(suite.expectations)} expectations", bare, note="after 1 warm-up")
    )
    progress("validation: first checkpoint run in a process (opens the context, compiles Data Docs templates)")
    validation.open_context.cache_clear()
    first, _ = time_calls(checkpoint_run, repeat=1)
    section.figures.append(Figure("validate_batch, first in a process", first, note="what each check step pays"))
    progress("validation: validate_batch x 6")
    samples, report = time_calls(checkpoint_run, repeat=5, warmup=1)
    section.figures.append(
        Figure(
            f"validate_batch: checkpoint + Data Docs, {len(frame):,} rows",
            samples,
            note=f"passed {expect(report.success and result.success, 'validation of a good batch')}; context reused",
        )
    )
    peak = traced_peak(checkpoint_run)
    section.figures.append(Figure("validate_batch: peak Python allocations", value=fmt_bytes(peak), note="tracemalloc"))
    return section


# -- 4. drift ----------------------------------------------------------------------------------------------------


def bench_drift() -> Section:
    """`compute_drift` of 2k current rows against 100k reference rows."""
    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import generate_batch
    from ml_assets.lib.drift import compute_drift
    from ml_assets.lib.features import infer_feature_spec

    params = load_params(REPO / "params.yaml")
    section = Section("Drift (ml_assets.lib.drift.compute_drift, params.yaml `drift:`)")
    progress("drift: generating 100k + 2k rows")
    reference = generate_batch(n_rows=100_000, seed=7, batch_date=dt.date(2026, 11, 1))
    current = generate_batch(n_rows=2_000, seed=8, batch_date=dt.date(2026, 12, 1), covariate_drift=0.5)
    spec = infer_feature_spec(reference, target=params.data.target, id_columns=params.data.id_columns)
    d = params.drift

    def run() -> Any:
        return compute_drift(
            reference,
            current,
            numeric=spec.numeric,
            categorical=spec.categorical,
            alpha=d.alpha,
            psi_threshold=d.psi_threshold,
            min_samples=d.min_samples,
            correction=d.correction,
            bins=d.bins,
        )

    progress("drift: compute_drift x 6")
    samples, report = time_calls(run, repeat=5, warmup=1)
    section.figures.append(
        Figure(
            f"100k reference vs 2k current rows, {len(spec.numeric)} numeric + {len(spec.categorical)} categorical",
            samples,
            note=f"status {report.status} (current batch has covariate drift 0.5); after 1 warm-up",
        )
    )
    section.figures.append(
        Figure("compute_drift: peak Python allocations", value=fmt_bytes(traced_peak(run)), note="tracemalloc")
    )
    return section


# -- 5. training graph and ingest --------------------------------------------------------------------------------


GRAPH_REPS = 3


@contextmanager
def graph_project(folder: Path) -> Iterator[tuple[Path, dg.DagsterInstance, dict[str, Any]]]:
    """A project like the test conftest's (repo params, dvc.yaml, GX suite) with empty stores under `folder`.

    The environment points at it too, as the conftest's monkeypatch does, for anything that reads it.
    """
    from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource

    root, remote, home = folder / "project", folder / "dvc_remote", folder / "dagster_home"
    root.mkdir(parents=True)
    home.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))  # machine state
    (root / ".mlflow").mkdir()
    tracking_uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    os.environ.update(
        {"ML_ASSETS_ROOT": str(root), "MLFLOW_TRACKING_URI": tracking_uri, "ML_ASSETS_DVC_REMOTE": str(remote)}
    )
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield (
            root,
            instance,
            {
                "project": ProjectResource(root=str(root), dvc_remote=str(remote)),
                "mlflow": MlflowResource(root=str(root), tracking_uri=tracking_uri),
                "alerts": AlertResource(),
            },
        )


class GraphPass:
    """One fresh project: demo ingest, first training run, unchanged second run, one ingest with a champion."""

    def __init__(self, folder: Path) -> None:
        from ml_assets.definitions import defs
        from ml_assets.defs.jobs import ingest_batch_job

        self.folder = folder
        self.assets = list(defs.assets or []) + list(defs.asset_checks or [])
        self.train_selection = dg.AssetSelection.assets("training_snapshot").downstream() - dg.AssetSelection.assets(
            "predictions"
        )
        self.ingest_selection = ingest_batch_job.selection  # what the landing sensor's runs materialize
        self.times: dict[str, list[float]] = {}
        self.notes: dict[str, str] = {}

    def timed(self, key: str, fn: Callable[[], Any]) -> Any:
        """Runs `fn`, adding its duration to the samples of `key`."""
        begin = time.perf_counter()
        result = fn()
        self.times.setdefault(key, []).append(time.perf_counter() - begin)
        return result

    def run(self) -> None:
        """The whole pass; invariants are recorded with `expect`."""
        from mlflow import MlflowClient

        from ml_assets.defs.ingestion import landing_batches
        from ml_assets.lib.config import load_params
        from ml_assets.lib.demo_data import write_demo_batches
        from ml_assets.lib.dvc_store import DvcStore

        with graph_project(self.folder) as (root, instance, resources):
            params = load_params(root / "params.yaml")
            demo = params.demo
            client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
            landing = root / params.data.landing_dir

            def counts() -> tuple[int, int]:
                experiment = client.get_experiment_by_name(params.registry.experiment_name)
                runs = client.search_runs([experiment.experiment_id], max_results=5000) if experiment else []
                return len(runs), len(client.search_model_versions(f"name = '{params.registry.model_name}'"))

            def materialize(**kwargs: Any) -> dg.ExecuteInProcessResult:
                options = {"instance": instance, "resources": resources, "raise_on_error": False, "run_config": QUIET}
                return dg.materialize(self.assets, **options, **kwargs)

            def ingest(key: str, name: str) -> dg.ExecuteInProcessResult:
                instance.add_dynamic_partitions(landing_batches.name, [name])
                return self.timed(key, lambda: materialize(selection=self.ingest_selection, partition_key=name))

            def passed(result: dg.ExecuteInProcessResult) -> bool:
                return result.success and all(e.passed for e in result.get_asset_check_evaluations())

            def reused(result: dg.ExecuteInProcessResult) -> int:
                flags = {
                    e.asset_key.to_user_string(): e.materialization.metadata.get("reused")
                    for e in result.get_asset_materialization_events()
                }
                return sum(
                    1
                    for spec in params.training.candidates
                    if (flag := flags.get(f"candidate_{spec.name}")) is not None and flag.value is True
                )

            def setup() -> list[Path]:
                client.search_experiments()  # creates and migrates the SQLite store
                landed = write_demo_batches(
                    landing,
                    batches=demo.batches,
                    rows_per_batch=demo.rows_per_batch,
                    seed=demo.seed,
                    start_date=dt.date.fromisoformat(demo.start_date),
                )
                DvcStore(root=root, remote_url=os.environ["ML_ASSETS_DVC_REMOTE"]).ensure_ready()
                return landed

            landed = self.timed("setup", setup)
            ok = all([passed(ingest("ingest_cold", p.name)) for p in landed])
            self.notes["ingest_cold"] = f"passed {expect(ok, 'demo batch ingest')}"

            first = self.timed("train1", lambda: materialize(selection=self.train_selection))
            runs1, versions1 = counts()
            ok = passed(first) and versions1 == 1
            self.notes["train1"] = f"{runs1} MLflow runs, {versions1} version: {expect(ok, 'first training run')}"

            second = self.timed("train2", lambda: materialize(selection=self.train_selection))
            runs2, versions2 = counts()
            n = len(params.training.candidates)
            ok = second.success and (runs2, versions2) == (runs1, versions1) and reused(second) == n
            self.notes["train2"] = (
                f"MLflow runs {runs1}->{runs2}, versions {versions1}->{versions2}, {reused(second)}/{n} candidates "
                f"reused: {expect(ok, 'unchanged second training run trained or registered nothing')}"
            )

            [new] = write_demo_batches(
                landing,
                batches=1,
                rows_per_batch=demo.rows_per_batch,
                seed=demo.seed + 100,
                start_date=dt.date.fromisoformat(demo.start_date) + dt.timedelta(days=30),
            )
            result = ingest("ingest_champion", new.name)
            done = sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())
            ok = passed(result) and "batch_drift" in done
            self.notes["ingest_champion"] = f"{len(done)} assets ({', '.join(done)}): {expect(ok, 'champion ingest')}"


def bench_graph(base: Path) -> Section:
    """`GRAPH_REPS` fresh projects, each: ingest the demo data, train, train again unchanged, ingest one batch."""
    from ml_assets.lib.config import load_params

    params = load_params(REPO / "params.yaml")
    demo = params.demo
    section = Section(
        f"Graph, in-process dg.materialize, repo params.yaml, demo data {demo.batches} x {demo.rows_per_batch:,} rows"
        f" ({GRAPH_REPS} fresh projects)"
    )
    times: dict[str, list[float]] = {}
    notes: dict[str, set[str]] = {}
    for rep in range(GRAPH_REPS):
        progress(f"graph: project {rep + 1}/{GRAPH_REPS} (ingest {demo.batches}, train, train again, ingest 1)")
        graph = GraphPass(base / f"graph_{rep}")
        try:
            graph.run()
        finally:
            for key, samples in graph.times.items():
                times.setdefault(key, []).extend(samples)
            for key, note in graph.notes.items():
                notes.setdefault(key, set()).add(note)
            shutil.rmtree(graph.folder, ignore_errors=True)
    rows = {
        "setup": "setup: new MLflow store, write the demo data, dvc init",
        "ingest_cold": "ingest one batch, no champion yet (validate, keep)",
        "train1": f"training, first run (trains {len(params.training.candidates)} candidates, registers v1)",
        "train2": "training, second run, nothing changed (must train nothing)",
        "ingest_champion": "ingest one batch with a champion",
    }
    extra = {
        "ingest_cold": "max: the process's first (cold imports); ",
        "train1": "max: the process's first (cold imports); ",
    }
    for key, label in rows.items():
        if key in times:
            note = extra.get(key, "") + " | ".join(sorted(notes.get(key, set())))
            section.figures.append(Figure(label, times[key], note=note))
    return section


# -- main --------------------------------------------------------------------------------------------------------


def child_env(base: Path) -> dict[str, str]:
    """The environment of this run and its children: every store in the temp folder, like the test conftest."""
    home = base / "dagster_home"
    home.mkdir()
    return {
        **os.environ,
        # Never the repository's stores; each graph project points these at its own (see graph_project).
        "ML_ASSETS_ROOT": str(base / "no_project"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'no_project' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(base / "no_dvc_remote"),
        "DAGSTER_HOME": str(home),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONWARNINGS": "ignore",
    }


def run_section(sections: list[Section], title: str, fn: Callable[[], Section]) -> None:
    """Runs one section; an exception becomes an ERROR row instead of ending the run."""
    try:
        section = fn()
    except Exception as error:  # a broken section must not hide the others' figures
        section = Section(title, error=f"{type(error).__name__}: {error}"[:300])
        failures.append(f"{title}: {section.error}")
        progress(f"{title} FAILED: {error!r}")
    section.peak_rss = peak_rss_self()
    sections.append(section)


def main(argv: list[str] | None = None) -> int:
    """Runs every section in a temp folder and prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and print its path")
    parser.add_argument(
        "--only",
        help="sections to run, comma-separated: sensor, location, validation, drift, graph, evaluation, serving, "
        "scale, daemon",
    )
    parser.add_argument(
        "--sizes",
        default=os.environ.get("ML_ASSETS_BENCH_SIZES", "10k,100k"),
        help="sizes of the make-run-vs-bare section (10k, 100k, 1m); ML_ASSETS_BENCH_SIZES sets the default "
        "(1m takes several minutes more)",
    )
    parser.add_argument(
        "--exhaustive",
        default=os.environ.get("ML_ASSETS_BENCH_EXHAUSTIVE", "10k,100k,1m"),
        help="sizes that also run the exhaustive search the halving search is compared with ('' for none)",
    )
    args = parser.parse_args(argv)
    chosen = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return chosen is None or name in chosen

    quiet_libraries()
    # SIGTERM ends the run through the `finally` blocks, so servers a section started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="ml_assets_bench_"))
    sections: list[Section] = []
    log = base / "library_output.log"
    log_tail = ""
    try:
        env = child_env(base)
        os.environ.update(env)
        print(header(), flush=True)
        with library_output_to(log):
            # GX is first imported in-process by the validation section (nothing before imports it).
            if wanted("sensor"):
                run_section(sections, "Landing sensor", lambda: bench_landing_sensor(base))
            if wanted("location"):
                run_section(sections, "Code location load", lambda: bench_code_location(env))
            if wanted("validation"):
                run_section(sections, "Batch validation", lambda: bench_validation(base))
            if wanted("drift"):
                run_section(sections, "Drift", bench_drift)
            if wanted("graph"):
                run_section(sections, "Graph", lambda: bench_graph(base))
            if wanted("evaluation"):
                run_section(sections, "Evaluation extras", lambda: bench_evaluation(base, say=progress))
            if wanted("serving"):
                run_section(sections, "Serving", lambda: bench_serving(base, say=progress))
            if wanted("scale"):
                from benchmarks.scale import bench_scale

                sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
                run_section(
                    sections,
                    "make run vs bare",
                    lambda: bench_scale(
                        base / "scale",
                        sizes=sizes,
                        exhaustive={s.strip().lower() for s in args.exhaustive.split(",") if s.strip()},
                        expect=expect,
                        progress=progress,
                    ),
                )
            if wanted("daemon"):
                from benchmarks.daemon import bench_daemon

                run_section(
                    sections, "Daemon path", lambda: bench_daemon(base / "daemon", expect=expect, progress=progress)
                )
        if failures and log.is_file():
            log_tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    finally:
        if args.keep:
            progress(f"kept {base} (library output in {log.name})")
        else:
            shutil.rmtree(base, ignore_errors=True)
    sections.append(
        Section(
            "Whole benchmark process",
            figures=[
                Figure("peak RSS of this process (ru_maxrss)", value=fmt_bytes(peak_rss_self())),
                Figure("wall time of the whole bench", [time.perf_counter() - started]),
            ],
        )
    )
    print()
    print(render(sections))
    if failures:
        print("\nBROKEN INVARIANTS (the figures next to them are not meaningful):")
        for failure in failures:
            print(f"  - {failure}")
        if log_tail:
            print(f"\nlast lines of the library output (rerun with --keep for all of it):\n{log_tail}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
