"""`make soak`: hundreds of batches, some bad in varied ways, landed on the real daemon; no row lost, no worse champion.

A temporary project (its own Dagster home, MLflow store and DVC remote, laid out as the tests lay
out theirs: ml_assets_tests/conftest.py) runs under `dagster dev` (webserver, daemon, code server:
ml_assets_tests/e2e/harness.py) with the sensors on, as a user's would. Batches land in waves,
several per sensor tick; about 5% are bad: each kind of `demo_data.BAD_BATCH_KINDS`, a file cut
mid-row that never completes, and a validated batch re-landed under its name with broken content.
The second half drifts (its label model moves away, some batches' features too), so retrains and
promotions happen. A wave is landed once the previous one is settled, which leaves the retrain
sensor the quiet ticks it waits for; a final training run then rebuilds the snapshot so its row
ledger check covers every batch.

When everything has settled it prints the row ledger read from Dagster's event log (the one book
the sensors and the UI use) against what the soak itself wrote, every move of `champion` from
the champion history (registry tags) with the holdout ROC AUC of the new and the old champion on
the same rows, and the wall time. It exits non-zero when:

- a landed row is unaccounted for: a batch written (last version) is missing from the ledger, the
  ledger holds another version or another row count, or a batch is still pending after the timeout;
- a torn file was taken, or a bad batch was validated;
- the final snapshot's `rows_accounted_for` check did not pass;
- an automated promotion moved `champion` without a comparison with the champion it replaced, or
  to a worse model: `holdout_roc_auc(new) - holdout_roc_auc(old) < -gates.non_inferiority_margin`
  on the same holdout rows (the point estimate), or a recorded one-sided lower bound of the
  paired bootstrap at or below `-margin` (the gate's own rule, `lib/gates.py` `non_inferior`).

    python -m benchmarks.soak [--batches 200] [--rows 300] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[1]
BAD_KINDS = ("null_required", "wrong_dtype", "unknown_category", "one_class_target", "torn", "relanded_bad")
TRAIN, INGEST = "training_job", "ingest_batch_job"


def say(message: str) -> None:
    """A progress line with the time."""
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Written:
    """A batch as the soak wrote it last: what the ledger must hold for it."""

    name: str
    key: str
    rows: int
    md5: str
    index: int
    kind: str | None = None
    versions: int = 1


@dataclass
class Plan:
    """Which batch is bad, and how."""

    batches: int
    bad: dict[int, str] = field(default_factory=dict)

    @classmethod
    def make(cls, batches: int, *, bad_share: float, per_wave: int, seed: int) -> Plan:
        """Every bad kind at least once, `bad_share` of the batches in all, none in the first tenth.

        A re-landing comes after the first wave, so the batch it replaces has its verdict already.
        """
        rng = random.Random(seed)
        n_bad = max(len(BAD_KINDS), round(batches * bad_share))
        start = max(2, batches // 10)
        if batches - max(start, per_wave) < n_bad:
            raise SystemExit(f"--batches {batches} is too few for {n_bad} bad batches after the first wave")
        kinds = [BAD_KINDS[i % len(BAD_KINDS)] for i in range(n_bad)]
        rng.shuffle(kinds)
        at = sorted(rng.sample(range(start, batches), n_bad))
        bad = dict(zip(at, kinds, strict=True))
        for index in [i for i in at if i < per_wave and bad[i] == "relanded_bad"]:
            later = next(i for i in at if i >= per_wave and bad[i] != "relanded_bad")
            bad[index], bad[later] = bad[later], bad[index]
        return cls(batches=batches, bad=bad)


def make_project(base: Path, *, rows: int, retrain_every: int) -> Any:
    """The tests' project layout (smaller models), fast sensors, a retrain every `retrain_every` batches."""
    from mlflow import MlflowClient

    from ml_assets_tests.conftest import _new_project_files

    template = base / "mlflow_template.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # an empty, migrated store
    _new_project_files(base, template)
    template.unlink()
    path = base / "project" / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    # 5 s is the daemon's loop floor; 2 s of settling: files land by rename, a torn one never ends whole.
    raw["automation"].update(landing_interval_seconds=5, retrain_interval_seconds=5, settle_seconds=2)
    raw["retrain"]["min_new_rows"] = retrain_every * rows
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return yaml.safe_load(path.read_text())


def land(landing: Path, index: int, *, rows: int, kind: str | None, batches: int, rng: random.Random) -> Written:
    """Writes batch `index` (bad when `kind` is set), by rename as an upload tool would."""
    from ml_assets.lib.demo_data import corrupt_batch, generate_batch
    from ml_assets.lib.landing import file_md5, partition_key

    day = dt.date(2027, 1, 1) + dt.timedelta(days=index)
    late = max(0.0, (index - batches / 2) / (batches / 2))  # 0 in the first half, up to 1 at the end
    frame = generate_batch(
        n_rows=rows,
        seed=1000 + index,
        batch_date=day,
        covariate_drift=rng.choice([0.0, 0.0, 0.0, 0.5]) * late,
        concept_drift=0.5 * late,
    )
    if kind is not None and kind != "torn":
        frame = corrupt_batch(frame, kind=kind, seed=index)
    name = f"batch_{day.isoformat()}.csv"
    tmp = landing / f".{name}.tmp"
    frame.to_csv(tmp, index=False)
    if kind == "torn":  # a writer that died mid-row: cut a few characters into a row, never completed
        text = tmp.read_text()
        cut = text.index("\n", len(text) // 2) + 5
        tmp.write_text(text[:cut])
    tmp.replace(landing / name)
    md5 = file_md5(landing / name)
    return Written(name=name, key=partition_key(name), rows=len(frame), md5=md5, index=index, kind=kind)


def reland_bad(landing: Path, target: Written, *, seed: int) -> Written:
    """The same name again with broken content: a new version of a batch that validated earlier."""
    import pandas as pd

    from ml_assets.lib.demo_data import corrupt_batch
    from ml_assets.lib.landing import file_md5

    broken = corrupt_batch(pd.read_csv(landing / target.name), kind="null_required", seed=seed)
    tmp = landing / f".{target.name}.tmp"
    broken.to_csv(tmp, index=False)
    tmp.replace(landing / target.name)
    return Written(
        name=target.name,
        key=target.key,
        rows=len(broken),
        md5=file_md5(landing / target.name),
        index=target.index,
        kind="relanded_bad",
        versions=target.versions + 1,
    )


def in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs queued, starting or started."""
    from ml_assets.defs.sensors import IN_PROGRESS

    return list(instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)))


def unsettled(instance: dg.DagsterInstance, written: dict[str, Written]) -> list[str]:
    """Batches written (torn files aside) whose last version has no verdict yet."""
    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger

    ledger = {e.batch: e for e in read_ledger(instance, BATCH_CHECKS)}
    return [
        w.key
        for w in written.values()
        if w.kind != "torn"
        and (w.key not in ledger or ledger[w.key].landed_md5 != w.md5 or ledger[w.key].status == "pending")
    ]


def retrain_weighed_since(instance: dg.DagsterInstance, moment: float) -> bool:
    """Whether a tick of `retrain_sensor` that started after `moment` (epoch seconds) has finished."""
    for state in instance.all_instigator_state():
        if state.instigator_name == "retrain_sensor":
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            if ticks and ticks[0].timestamp > moment and ticks[0].status.value != "STARTED":
                return True
    return False


def wait_until(what: str, probe: Callable[[], bool], *, timeout: float, every: float = 5.0) -> bool:
    """Polls `probe`; False (and a line saying so) when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            say(f"gave up waiting for {what} after {timeout:.0f} s")
            return False
        time.sleep(every)
    return True


def fmt(n: int) -> str:
    """A count with thousands separators."""
    return f"{n:,}"


def report(
    instance: dg.DagsterInstance,
    tracking_uri: str,
    params: dict[str, Any],
    written: dict[str, Written],
    *,
    final_run: str | None,
    interrupted: bool = False,
) -> list[str]:
    """Prints the ledger, the final snapshot's check and the champion moves; returns the failures."""
    from mlflow import MlflowClient

    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib import promotion

    failures: list[str] = []
    ledger = {e.batch: e for e in read_ledger(instance, BATCH_CHECKS)}
    torn = [w for w in written.values() if w.kind == "torn"]
    landed = [w for w in written.values() if w.kind != "torn"]
    rows = dict.fromkeys(("validated", "quarantined", "pending"), 0)
    batches = dict.fromkeys(("validated", "quarantined", "pending"), 0)
    in_progress = 0
    for w in sorted(landed, key=lambda w: w.key):
        entry = ledger.get(w.key)
        if entry is None or entry.landed_md5 != w.md5 or entry.landed_rows != w.rows:
            held = f"md5 {entry.landed_md5[:8]} with {entry.landed_rows} rows" if entry else "nothing"
            runs = list(instance.get_runs(dg.RunsFilter(job_name=INGEST, tags={"dagster/partition": w.key})))
            if interrupted and (not runs or not all(r.is_finished for r in runs)):
                in_progress += w.rows  # not taken yet, or its run was still going when the soak stopped
                continue
            failures.append(
                f"lost: `{w.name}` ({w.rows} rows, md5 {w.md5[:8]}) landed; the ledger holds {held}; "
                f"its runs: {'; '.join(run_outcome(instance, r) for r in runs) or 'none'}"
            )
            continue
        if entry.status == "pending" and interrupted:
            runs = list(instance.get_runs(dg.RunsFilter(job_name=INGEST, tags={"dagster/partition": w.key})))
            if not all(r.is_finished for r in runs):
                in_progress += w.rows  # its checks were running when the soak stopped
                continue
        rows[entry.status] += entry.landed_rows
        batches[entry.status] += 1
        if entry.status == "pending":
            failures.append(f"pending: `{w.name}` ({w.rows} rows) has no verdict after the timeout: {entry.detail}")
        elif w.kind is not None and entry.status == "validated":
            failures.append(f"bad batch validated: `{w.name}` ({w.kind}) passed every check")
        elif w.kind is None and entry.status == "quarantined":
            say(f"note: good batch `{w.name}` was quarantined ({entry.detail})")
    for w in torn:
        if w.key in ledger:
            failures.append(f"torn file taken: `{w.name}` never ended whole, yet it landed ({ledger[w.key].status})")
    strays = sorted(set(ledger) - {w.key for w in written.values()})
    if strays:
        failures.append(f"the ledger has batches the soak never wrote: {', '.join(strays)}")
    total = sum(w.rows for w in landed)
    unaccounted = total - sum(rows.values()) - in_progress
    kinds = sorted({w.kind for w in written.values() if w.kind})
    print(f"\nbatches written   {len(written)} ({len(written) - len(landed)} torn, never completed: not taken)")
    print(f"  bad             {sum(w.kind is not None for w in written.values())} ({', '.join(kinds)})")
    print(f"  landed          {len(landed)} = {batches['validated']} validated + {batches['quarantined']} quarantined")
    print(f"                  + {batches['pending']} pending")
    print(f"rows landed       {fmt(total)}")
    print(f"  validated       {fmt(rows['validated'])}")
    print(f"  quarantined     {fmt(rows['quarantined'])}")
    print(f"  pending         {fmt(rows['pending'])}")
    print(f"  unaccounted     {fmt(unaccounted)}")
    if interrupted:
        print(f"  in progress     {fmt(in_progress)} (not taken yet or being validated when the soak was interrupted)")

    if final_run is not None:
        records = instance.get_records_for_run(final_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        found = [
            r.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            for r in records
            if r.event_log_entry.dagster_event is not None
        ]
        ledger_check = [e for e in found if e.check_name == "rows_accounted_for"]
        if not ledger_check:
            failures.append(f"the final training run {final_run[:8]} has no `rows_accounted_for` result")
        for evaluation in ledger_check:
            verdict = "passed" if evaluation.passed else "FAILED"
            print(f"final snapshot    rows_accounted_for {verdict}: {evaluation.description}")
            if not evaluation.passed:
                failures.append(f"the final snapshot's row ledger check failed: {evaluation.description}")

    model_name = params["registry"]["model_name"]
    margin = float(params["gates"]["non_inferiority_margin"])
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        events = promotion.history(dict(client.get_registered_model(model_name).tags or {}))
    except Exception as error:  # no model was ever registered
        failures.append(f"`{model_name}` could not be read from the registry at `{tracking_uri}`: {error}")
        events = []
    print(
        f"\nchampion moves    {len(events)}; holdout ROC AUC of the new champion vs the one it replaced, "
        f"on the same rows (worse = below -{margin} = -gates.non_inferiority_margin)"
    )
    for event in events:
        new, old = event.metrics.get("holdout_roc_auc"), event.metrics.get("champion_holdout_roc_auc")
        lower = event.metrics.get("lead_lower_bound")
        if new is not None and old is not None:
            figures = f"{new:.4f} vs {old:.4f} ({new - old:+.4f}"
            figures += f", lower bound {lower:+.4f})" if lower is not None else ")"
        elif new is not None:
            figures = f"{new:.4f} (first champion)"
        else:
            figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(event.metrics.items())) or "-"
        print(
            f"  {event.seq:>3} {event.at[:19]} {event.action:<8} v{event.previous or '-'} -> v{event.version}"
            f"  {figures}  [{event.actor}]"
        )
        if event.action != "promote" or event.previous is None:
            continue
        if new is None or old is None:
            failures.append(f"unverified promotion: v{event.previous} -> v{event.version} without both holdout scores")
        elif new - old < -margin:
            failures.append(f"worse model promoted: v{event.previous} -> v{event.version} ({new - old:+.4f})")
        elif lower is not None and lower <= -margin:
            failures.append(
                f"promotion past the gate: v{event.previous} -> v{event.version}, lower bound {lower:+.4f} <= -{margin}"
            )

    runs = list(instance.get_runs())
    by_job: dict[str, list[dg.DagsterRun]] = {}
    for run in runs:
        by_job.setdefault(run.job_name, []).append(run)
    print("\nruns")
    for job, job_runs in sorted(by_job.items()):
        failed = sum(r.status == dg.DagsterRunStatus.FAILURE for r in job_runs)
        triggers: dict[str, int] = {}
        for run in job_runs:
            trigger = run.tags.get("ml_assets/trigger", "?")
            triggers[trigger] = triggers.get(trigger, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(triggers.items()))
        print(f"  {job:<22} {len(job_runs):>4} ({failed} failed; triggers: {detail})")
    return failures


def run_outcome(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """A run's id, status and the first line of the last error its events carry."""
    reason = ""
    for event in instance.all_logs(run.run_id):
        error = getattr(event.dagster_event.event_specific_data, "error", None) if event.dagster_event else None
        if error is not None:
            reason = f"{event.message}: {error.message.strip().splitlines()[0]}"
    return f"{run.run_id[:8]} {run.status.value}" + (f" ({reason[:300]})" if reason else "")


def stop_leftovers(marker: str) -> None:
    """Kills (by pid) any process the soak's `dagster dev` started that outlived it."""
    from ml_assets.devserver import marked_processes

    for pid in marked_processes(Path(marker)):
        if pid != os.getpid():
            say(f"killing leftover process {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def soak(args: argparse.Namespace, base: Path) -> int:
    """Lands the batches on a running `dagster dev`, waits for every verdict, reports."""
    from ml_assets_tests.conftest import Project
    from ml_assets_tests.e2e.harness import dagster_dev, launch_job

    started = time.monotonic()
    params = make_project(base, rows=args.rows, retrain_every=args.retrain_every)
    root = base / "project"
    landing = root / "data" / "landing"
    landing.mkdir(parents=True)
    plan = Plan.make(args.batches, bad_share=args.bad_share, per_wave=args.per_wave, seed=args.seed)
    rng = random.Random(args.seed)
    home = base / "dagster_home"
    shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", home / "dagster.yaml")
    say(
        f"project {base}; {args.batches} batches of {args.rows} rows in waves of {args.per_wave}, "
        f"{len(plan.bad)} bad ({', '.join(f'{i}:{k}' for i, k in plan.bad.items())}); "
        f"a retrain every {params['retrain']['min_new_rows']} new validated rows"
    )
    written: dict[str, Written] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        project = Project(root=root, dvc_remote=base / "dvc_remote", instance=instance)
        final_run, interrupted = None, False
        with dagster_dev(project, home) as dev:
            say(f"dagster dev is up at {dev.url} ({time.monotonic() - started:.0f} s)")
            try:
                land_waves(args, plan, dev.instance, landing, written, rng=rng)
                deadline = time.monotonic() + args.timeout_minutes * 60
                settle(dev.instance, written, deadline=deadline, stall_seconds=args.stall_seconds)
                say(f"settled at {time.monotonic() - started:.0f} s; a final training run rebuilds the snapshot")
                final_run = launch_job(dev.url, TRAIN, tags={"ml_assets/trigger": "soak_final"})
                wait_until(
                    "the final training run and what it starts",
                    lambda: (
                        (run := dev.instance.get_run_by_id(final_run)) is not None
                        and run.is_finished
                        and not in_flight(dev.instance)
                    ),
                    timeout=max(120.0, deadline - time.monotonic()),
                )
            except KeyboardInterrupt:  # Ctrl-C or `kill`: the books so far, then everything stops
                interrupted = True
                say(f"interrupted after {len(written)} files; the figures below are partial")
            wall = time.monotonic() - started
            say(f"done in {wall:.0f} s; reading the books")
            failures = report(
                dev.instance, project.tracking_uri, params, written, final_run=final_run, interrupted=interrupted
            )
    if interrupted:
        failures.append(f"interrupted after {len(written)} of {args.batches} batches")
    print(f"\nwall time         {wall / 60:.1f} min ({wall:.0f} s) on {os.cpu_count()} cores")
    if failures:
        print("\nsoak FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nsoak passed: every landed row accounted for, no torn file taken, no bad batch kept, no worse champion")
    return 0


def land_waves(
    args: argparse.Namespace,
    plan: Plan,
    instance: dg.DagsterInstance,
    landing: Path,
    written: dict[str, Written],
    *,
    rng: random.Random,
) -> None:
    """Lands the batches wave by wave; the next wave lands once the retrain sensor has weighed the last one."""
    for wave in range(0, args.batches, args.per_wave):
        for index in range(wave, min(wave + args.per_wave, args.batches)):
            kind = plan.bad.get(index)
            if kind == "relanded_bad":  # a batch from an earlier wave (it has its verdict) comes again, broken
                target = next(w for w in written.values() if w.index < wave and w.kind is None)
                written[target.name] = reland_bad(landing, target, seed=index)
            else:
                batch = land(landing, index, rows=args.rows, kind=kind, batches=args.batches, rng=rng)
                written[batch.name] = batch
        landed_at = time.monotonic()
        # As between real deliveries: the retrain sensor weighs the wave once its runs are done
        # (it waits while any batch is being validated), before the next wave lands.
        settle(
            instance,
            written,
            deadline=time.monotonic() + args.wave_timeout,
            stall_seconds=args.stall_seconds,
            only=INGEST,
            quiet_seconds=0,
        )
        weighed = functools.partial(retrain_weighed_since, instance, time.time())
        wait_until("a retrain tick", weighed, timeout=120, every=2)
        busy = sorted({r.job_name for r in in_flight(instance)})
        say(
            f"landed {len(written)} files ({min(wave + args.per_wave, args.batches)} batches); "
            f"wave done in {time.monotonic() - landed_at:.0f} s; in flight: {', '.join(busy) or '-'}"
        )


def settle(
    instance: dg.DagsterInstance,
    written: dict[str, Written],
    *,
    deadline: float,
    stall_seconds: float,
    only: str | None = None,
    quiet_seconds: float = 20,
) -> None:
    """Waits until every batch has its verdict and no run (of job `only`) is in flight, or nothing moves any more.

    Nothing in flight for `stall_seconds` while a batch still has no verdict means nothing will
    give it one (the landing sensor retries a pending batch within a tick or two): stop waiting.
    """
    idle_since = None
    while time.monotonic() < deadline:
        waiting = unsettled(instance, written)
        busy = [r for r in in_flight(instance) if only is None or r.job_name == only]
        if not busy:
            idle_since = idle_since or time.monotonic()
            if not waiting and time.monotonic() - idle_since >= quiet_seconds:  # the retrain sensor had its tick
                return
            if waiting and time.monotonic() - idle_since > stall_seconds:
                say(f"stalled: nothing in flight for {stall_seconds:.0f} s, no verdict for {', '.join(waiting)}")
                return
        else:
            idle_since = None
        time.sleep(2 if only else 5)
    say("gave up waiting for verdicts: the timeout passed")


def interrupt(*_: object) -> None:
    """SIGTERM handler: unwinds as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Runs the soak; every process it starts is stopped on exit, Ctrl-C and failure included."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=300, help="rows per batch")
    parser.add_argument("--bad-share", type=float, default=0.05, help="share of bad batches (each kind at least once)")
    parser.add_argument("--per-wave", type=int, default=8, help="batches landed together")
    parser.add_argument(
        "--retrain-every", type=int, default=None, help="validated batches that retrain on volume (batches / 6)"
    )
    parser.add_argument("--wave-timeout", type=float, default=600.0, help="seconds a wave may take to settle")
    parser.add_argument("--timeout-minutes", type=float, default=20.0, help="for the end: settling, final training")
    parser.add_argument("--stall-seconds", type=float, default=90.0, help="idle time that ends a wait for verdicts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = parser.parse_args(argv)
    args.retrain_every = args.retrain_every or max(4, args.batches // 6)
    signal.signal(signal.SIGTERM, interrupt)  # a plain `kill` is a Ctrl-C: the books so far, then servers stop
    from ml_assets.devserver import MARKER

    base = Path(tempfile.mkdtemp(prefix="ml_assets_soak_"))
    os.environ[MARKER] = str(base)  # every process dagster dev starts inherits it: leftovers are found by it
    try:
        return soak(args, base)
    except KeyboardInterrupt:  # before dagster dev was up, or while it was being stopped
        say("interrupted")
        return 130
    finally:
        stop_leftovers(str(base))
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
