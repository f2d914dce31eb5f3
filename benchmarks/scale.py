"""`make run` (the CLI) against the bare script (`benchmarks/bare.py`) on the same data at 10k, 100k and 1M rows.

Each size gets 4 demo batches generated once. Every repetition runs, in turn: the bare script, then
`python -m ml_assets.cli run` on a fresh project (new Dagster home, MLflow store, DVC cache and remote)
holding the same landed files, then the same command again with nothing changed. Both sides run as
fresh processes, timed from outside (wall, and CPU from the kernel's accounting of the child), with
their own peak RSS (VmHWM). The ratio is taken pair by pair, so a machine that slows down in between
moves both sides. The graph must print the holdout metrics the bare script computed: they do the same
computations (an invariant, not a figure).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import Figure, Section, fmt_bytes

REPO = Path(__file__).resolve().parents[1]
SIZES = {"10k": 2_500, "100k": 25_000, "1m": 250_000}
"""Rows per batch of each size (4 batches)."""
REPS = {"10k": 3, "100k": 2, "1m": 1}
"""Repetitions of each size (ML_ASSETS_BENCH_REPS overrides them all, e.g. 1 for a quick look)."""


@dataclass
class ChildRun:
    """One timed child process."""

    wall: float
    cpu: float
    peak: int
    stdout: str


def run_child(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 3600) -> ChildRun:
    """Runs `python -m benchmarks.peak <args>`; wall time, CPU (user + sys) and its own peak RSS.

    Raises:
        RuntimeError: The child failed (its output tail is in the message).
    """
    with tempfile.NamedTemporaryFile(prefix="bench_peak_", delete=False) as handle:
        peak_file = Path(handle.name)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak", *args],
        env={**env, "BENCH_PEAK_FILE": str(peak_file), "PYTHONPATH": str(REPO)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_text = peak_file.read_text().strip() if peak_file.is_file() else ""
    peak_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` exited {done.returncode}: {(done.stdout + done.stderr)[-2500:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return ChildRun(wall=wall, cpu=cpu, peak=int(peak_text or 0), stdout=done.stdout)


def make_data(base: Path, size: str) -> Path:
    """Writes the size's 4 demo batches once; returns the landing folder."""
    import datetime as dt

    from ml_assets.lib.config import load_params
    from ml_assets.lib.demo_data import write_demo_batches

    landing = base / f"landing_{size}"
    demo = load_params(REPO / "params.yaml").demo
    write_demo_batches(
        landing,
        batches=4,
        rows_per_batch=SIZES[size],
        seed=demo.seed,
        start_date=dt.date.fromisoformat(demo.start_date),
    )
    return landing


def write_params(path: Path) -> None:
    """The repository's params.yaml, as it is."""
    shutil.copy(REPO / "params.yaml", path)


def make_project(folder: Path, landing: Path) -> tuple[Path, dict[str, str]]:
    """A fresh project (repo params, dvc.yaml, GX suite; the landed files hard-linked) and its environment."""
    from ml_assets.lib.config import load_params

    root = folder / "repo"
    root.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    write_params(root / "params.yaml")
    shutil.copytree(REPO / "gx", root / "gx")
    target = root / load_params(root / "params.yaml").data.landing_dir
    target.mkdir(parents=True)
    for path in sorted(landing.iterdir()) if landing.is_dir() else []:
        os.link(path, target / path.name)
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(folder / "dvc_remote"),
    }
    return root, env


def printed_metrics(stdout: str) -> dict[str, float]:
    """The candidate's holdout metrics `make run` printed (the first column after the name)."""
    metrics = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("accuracy", "f1", "roc_auc", "log_loss"):
            metrics[parts[0]] = float(parts[1])
    return metrics


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_scale(
    base: Path,
    *,
    sizes: list[str],
    exhaustive: set[str],
    expect: Callable[[bool, str], str],
    progress: Callable[[str], None],
) -> Section:
    """The pairs at each size, the unchanged rerun, memory against the dataset, and search against exhaustive."""
    base.mkdir(parents=True, exist_ok=True)
    section = Section("make run (the CLI) vs the bare script, same data, fresh stores each run (4 batches)")
    for size in sizes:
        rows = 4 * SIZES[size]
        progress(f"scale {size}: writing 4 x {SIZES[size]:,} rows")
        landing = make_data(base, size)
        bare_env = {**os.environ}
        bare_root = base / f"bare_{size}"
        bare_root.mkdir()
        write_params(bare_root / "params.yaml")
        (bare_root / "data").mkdir()
        (bare_root / "data" / "landing").symlink_to(landing)
        bares, graphs, reruns = [], [], []
        bare_result: dict[str, Any] = {}
        same = True
        noop_said = True
        reps = int(os.environ.get("ML_ASSETS_BENCH_REPS") or REPS[size])
        for rep in range(reps):
            progress(f"scale {size}: repetition {rep + 1}/{reps}: bare script")
            out = base / f"bare_{size}_{rep}.json"
            bares.append(
                run_child(["benchmarks.bare", "--root", str(bare_root), "--json", str(out)], env=bare_env, cwd=REPO)
            )
            bare_result = json.loads(out.read_text())
            progress(f"scale {size}: repetition {rep + 1}/{reps}: make run (fresh project)")
            root, env = make_project(base / f"graph_{size}_{rep}", landing)
            graphs.append(run_child(["ml_assets.cli", "run"], env=env, cwd=root))
            printed = printed_metrics(graphs[-1].stdout)
            same = same and all(
                abs(printed.get(k, float("nan")) - round(v, 4)) < 1e-9 for k, v in bare_result["holdout"].items()
            )
            progress(f"scale {size}: repetition {rep + 1}/{reps}: make run again, nothing changed")
            reruns.append(run_child(["ml_assets.cli", "run"], env=env, cwd=root))
            noop_said = noop_said and "nothing changed" in reruns[-1].stdout
            shutil.rmtree(base / f"graph_{size}_{rep}", ignore_errors=True)
        ratios = [g.wall / b.wall for g, b in zip(graphs, bares, strict=True)]
        overheads = [g.wall - b.wall for g, b in zip(graphs, bares, strict=True)]
        peak_g, peak_b = _median([g.peak for g in graphs]), _median([b.peak for b in bares])
        dataset = int(bare_result.get("dataset_bytes", 0))
        label = f"{size} rows (4 x {SIZES[size]:,})"
        section.figures += [
            Figure(
                f"make run, {label}",
                [g.wall for g in graphs],
                note=f"CPU {_median([g.cpu for g in graphs]):.1f} s; peak RSS {fmt_bytes(int(peak_g))}",
            ),
            Figure(
                f"  bare script, {label}",
                [b.wall for b in bares],
                note=f"CPU {_median([b.cpu for b in bares]):.1f} s; peak RSS {fmt_bytes(int(peak_b))}",
            ),
            Figure(
                "  make run / bare: wall (pairwise) and overhead",
                value=f"{_median(ratios):.2f}x",
                note=f"+{_median(overheads):.1f} s (pairs: {', '.join(f'{r:.2f}x' for r in ratios)}); "
                f"CPU {_median([g.cpu / b.cpu for g, b in zip(graphs, bares, strict=True)]):.2f}x",
            ),
            Figure(
                "  make run / bare: peak RSS",
                value=f"{peak_g / peak_b:.2f}x",
                note=f"in-memory dataset {fmt_bytes(dataset)}: graph {peak_g / dataset:.2f}x it, bare "
                f"{peak_b / dataset:.2f}x",
            ),
            Figure(
                "  unchanged rerun of make run",
                [r.wall for r in reruns],
                note=f"CPU {_median([r.cpu for r in reruns]):.1f} s; one-line no-op "
                f"{expect(noop_said, f'{size}: rerun said nothing changed')}",
            ),
            Figure(
                "  champion: graph and bare holdout metrics equal",
                value=f"{bare_result.get('champion')}",
                note=f"{json.dumps(bare_result.get('config'))} on {bare_result.get('rows_fit'):,} rows, roc_auc "
                f"{bare_result['holdout']['roc_auc']:.4f}: {expect(same, f'{size}: graph champion = bare champion')}",
            ),
        ]
        steps = bare_result.get("steps", {})
        section.figures.append(
            Figure(
                "  bare steps (last run)",
                value=f"{sum(steps.values()):.1f} s",
                note="; ".join(f"{k} {v:.1f}" for k, v in steps.items()),
            )
        )
        if size in exhaustive:
            progress(f"scale {size}: exhaustive search (every configuration on all training rows)")
            out = base / f"exhaustive_{size}.json"
            run = run_child(
                ["benchmarks.bare", "--root", str(bare_root), "--json", str(out), "--exhaustive"],
                env=bare_env,
                cwd=REPO,
            )
            result = json.loads(out.read_text())
            found, best = result["holdout"]["roc_auc"], result["exhaustive"]["holdout"]["roc_auc"]
            section.figures.append(
                Figure(
                    f"  search vs exhaustive, holdout roc_auc, {size}",
                    value=f"{found:.4f} vs {best:.4f}",
                    note=f"gap {best - found:+.4f} (goal <= 0.002); exhaustive: {result['exhaustive']['fits']} fits "
                    f"in {result['exhaustive']['seconds']:.0f} s ({result['exhaustive']['champion']}); search: "
                    f"{run.wall - result['exhaustive']['seconds']:.0f} s for the whole bare script",
                )
            )
        progress(f"scale {size}: done ({rows:,} rows)")
    return section
