"""`make soak`: hundreds of batches, some bad in varied ways, landed on the real daemon; no row lost, no worse champion.

A temporary project (its own Dagster home, MLflow store and DVC remote) runs under `dagster dev`
with the sensors on, as a user's would. Batches land a few at a time; about 5% are bad: a required
column nulled, a wrong type, an unknown category, no target, a file cut mid-row that never
completes, and a validated batch re-landed with broken content. When everything has settled the
soak prints the row ledger (what was landed, validated, quarantined) against what it wrote itself,
and every champion move with the holdout metrics before and after, and exits non-zero on any
lost row or any promotion to a model worse than the champion by more than the non-inferiority
margin.

    python -m benchmarks.soak [--batches 200] [--rows 200] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BAD_KINDS = ("null_required", "wrong_dtype", "unknown_category", "one_class_target", "torn", "relanded_bad")


def say(message: str) -> None:
    """A progress line with the time."""
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def layout(base: Path, *, rows: int) -> tuple[Path, dict[str, str]]:
    """A project root with the repository's params (faster sensors), suite, dvc.yaml; empty stores."""
    root = base / "project"
    root.mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["automation"].update(landing_interval_seconds=5, retrain_interval_seconds=10, settle_seconds=2)
    raw["retrain"]["min_new_rows"] = max(25 * rows, 2000)  # a retrain about every 25 batches
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
        "ML_ASSETS_DVC_REMOTE": str(base / "dvc_remote"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    return root, env


def land(landing: Path, index: int, *, rows: int, kind: str | None, rng: random.Random) -> tuple[str, int]:
    """Writes batch `index` (bad when `kind` is set); returns its file name and the rows a reader will find."""
    from ml_assets.lib.demo_data import corrupt_batch, generate_batch

    day = dt.date(2027, 1, 1) + dt.timedelta(days=index)
    frame = generate_batch(n_rows=rows, seed=1000 + index, batch_date=day, covariate_drift=rng.choice([0.0, 0.0, 0.3]))
    if kind and kind not in ("torn", "relanded_bad"):
        frame = corrupt_batch(frame, kind=kind, seed=index)
    name = f"batch_{day.isoformat()}.csv"
    tmp = landing / f".{name}.tmp"
    frame.to_csv(tmp, index=False)
    if kind == "torn":  # a writer that died mid-row: the file never completes
        text = tmp.read_text()
        tmp.write_text(text[: len(text) // 2])
    tmp.replace(landing / name)
    return name, len(frame)


def wait_for_ui(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    """Waits for the webserver to answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"dagster dev exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"the Dagster webserver at {url} did not answer within {timeout:.0f} s")


def settled(instance: dg.DagsterInstance, expected: set[str]) -> bool:
    """Every complete file has a verdict, and no run is queued or in progress."""
    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger

    busy = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
    )
    ledger = {e.batch: e for e in read_ledger(instance, BATCH_CHECKS)}
    return not busy and expected <= set(ledger) and all(e.status != "pending" for e in ledger.values())


def report(instance: dg.DagsterInstance, env: dict[str, str], written: dict[str, int], torn: set[str]) -> int:
    """Prints the ledger and the champion moves; returns the exit code."""
    from mlflow import MlflowClient

    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib import promotion
    from ml_assets.lib.config import load_params

    params = load_params(Path(env["ML_ASSETS_ROOT"]) / "params.yaml")
    ledger = {e.batch: e for e in read_ledger(instance, BATCH_CHECKS)}
    totals = {"validated": 0, "quarantined": 0, "pending": 0}
    lost = []
    for name, rows in sorted(written.items()):
        if name in torn:
            continue
        entry = ledger.get(name)
        if entry is None or entry.landed_rows != rows:
            lost.append(f"{name}: wrote {rows} rows, the ledger has {entry.landed_rows if entry else 'nothing'}")
            continue
        totals[entry.status] += entry.landed_rows
    landed = sum(rows for name, rows in written.items() if name not in torn)
    print(f"\nbatches written {len(written)} ({len(torn)} never completed: not taken, as they should not be)")
    print(f"rows landed     {landed}")
    print(f"  validated     {totals['validated']}")
    print(f"  quarantined   {totals['quarantined']}")
    print(f"  pending       {totals['pending']}")
    print(f"  unaccounted   {landed - sum(totals.values())}")
    snapshot = instance.get_latest_materialization_event(dg.AssetKey("training_snapshot"))
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("training_snapshot"), "rows_accounted_for")
    )
    if snapshot is not None and check is not None and check.event is not None:
        evaluation = check.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        print(f"last snapshot ledger check: {'passed' if evaluation.passed else 'FAILED'}: {evaluation.description}")

    uri = env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    events = promotion.history(dict(client.get_registered_model(params.registry.model_name).tags or {}))
    margin = params.gates.non_inferiority_margin
    worse = []
    print(f"\nchampion moves ({len(events)}); holdout ROC AUC of the new champion vs the one it replaced, same rows")
    for event in events:
        new, old = event.metrics.get("holdout_roc_auc"), event.metrics.get("champion_holdout_roc_auc")
        figures = f"{new:.4f} vs {old:.4f} ({new - old:+.4f})" if new is not None and old is not None else "first"
        print(f"  {event.seq:>3} {event.at} {event.action:<9} v{event.previous or '-'} -> v{event.version}  {figures}")
        if new is not None and old is not None and new - old < -margin:
            worse.append(f"v{event.version} ({new - old:+.4f})")
    if lost:
        print("\nLOST ROWS:\n  " + "\n  ".join(lost))
    if worse:
        print(f"\nPROMOTED A WORSE MODEL (beyond the margin {margin}): {', '.join(worse)}")
    ok = not lost and not worse and totals["pending"] == 0 and landed == sum(totals.values())
    print("\nsoak " + ("passed: every row accounted for, no worse champion" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Runs the soak."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--bad-share", type=float, default=0.05)
    parser.add_argument("--per-wave", type=int, default=8, help="batches landed together")
    parser.add_argument("--wave-seconds", type=float, default=10.0)
    parser.add_argument("--timeout-minutes", type=float, default=75)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a plain `kill` still stops dagster dev below
    base = Path(tempfile.mkdtemp(prefix="ml_assets_soak_"))
    root, env = layout(base, rows=args.rows)
    landing = root / "data" / "landing"
    landing.mkdir(parents=True)
    rng = random.Random(7)
    n_bad = max(len(BAD_KINDS), round(args.batches * args.bad_share))
    bad_at = dict(
        zip(
            sorted(rng.sample(range(10, args.batches), n_bad)),
            [BAD_KINDS[i % len(BAD_KINDS)] for i in range(n_bad)],
            strict=True,
        )
    )
    port = 3300 + rng.randrange(500)
    url = f"http://127.0.0.1:{port}"
    say(f"project {base}; {args.batches} batches of {args.rows} rows, {n_bad} bad; UI {url}")
    log = (base / "dagster_dev.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "ml_assets.definitions",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    written: dict[str, int] = {}
    torn: set[str] = set()
    started = time.monotonic()
    try:
        wait_for_ui(url, process)
        for index in range(args.batches):
            kind = bad_at.get(index)
            if kind == "relanded_bad":  # a batch that validated earlier comes again, broken, under its name
                from ml_assets.lib.demo_data import corrupt_batch

                name = sorted(n for n in written if n not in torn)[0]
                broken = corrupt_batch(pd.read_csv(landing / name), kind="null_required", seed=index)
                broken.to_csv(landing / f".{name}.tmp", index=False)
                (landing / f".{name}.tmp").replace(landing / name)
                written[name] = len(broken)
                continue
            name, rows = land(landing, index, rows=args.rows, kind=kind, rng=rng)
            written[name] = rows
            if kind == "torn":
                torn.add(name)
            if (index + 1) % args.per_wave == 0:
                say(f"landed {index + 1} batches")
                time.sleep(args.wave_seconds)
        deadline = time.monotonic() + args.timeout_minutes * 60
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            quiet_since = None
            while time.monotonic() < deadline:
                if settled(instance, set(written) - torn):
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 60:  # the retrain sensor had its say too
                        break
                else:
                    quiet_since = None
                time.sleep(10)
            else:
                say(f"not settled after {args.timeout_minutes:.0f} minutes")
            say(f"settled after {time.monotonic() - started:.0f} s")
            return report(instance, env, written, torn)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
