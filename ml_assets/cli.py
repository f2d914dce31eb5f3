"""Command line: `python -m ml_assets.cli prepare|run` (what `make dev` and `make run` call)."""

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.defs.graph import CODE_VERSIONS
from ml_assets.lib.config import Params, load_params
from ml_assets.lib.freshness import Freshness
from ml_assets.lib.landing import list_landing
from ml_assets.lib.settings import EndpointUnreachable, check_endpoint, resolve_locations

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Steps log to the run's event log (the UI shows it, traces included); the terminal gets one line each."""


def landed_files(landing_dir: Path) -> list[Path]:
    """The batch files in the landing folder, by name."""
    return [landing_dir / landed.name for landed in list_landing(landing_dir).files]


def prepare(root: Path, params: Params) -> list[Path]:
    """Writes the demo batches when the landing folder has none, and readies the DVC store."""
    from ml_assets.lib.demo_data import write_demo_batches
    from ml_assets.lib.dvc_store import DvcStore

    landing = root / params.data.landing_dir
    written: list[Path] = []
    if not landed_files(landing):
        written = write_demo_batches(
            landing,
            batches=params.demo.batches,
            rows_per_batch=params.demo.rows_per_batch,
            seed=params.demo.seed,
            start_date=dt.date.fromisoformat(params.demo.start_date),
        )
        print(f"landing folder was empty: wrote {len(written)} demo batches to {landing}")
    locations = resolve_locations(os.environ, root=str(root))
    DvcStore(root=root, remote_url=locations.dvc_remote, endpoint_url=locations.dvc_endpoint_url).ensure_ready()
    return written


def _failure_line(result: dg.ExecuteInProcessResult) -> str:
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if failed:
        return "REJECTED: " + "; ".join(f"{e.check_name}: {e.description or 'failed'}" for e in failed)
    errors = [e.step_failure_data.error for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error, message = (errors[0] if errors else None), "the run failed"
    while error is not None:  # the innermost cause is ours (Dagster's retry wraps it)
        message, error = error.message.strip().splitlines()[0], error.cause
    return f"FAILED: {message}; the run's log in the Dagster UI has the trace (run {result.run_id[:8]})"


def ingest_new_batches(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing_dir: Path, *, params: Params, fresh: Sequence[Path] = ()
) -> dict[str, bool]:
    """Validates every complete landed file whose content the batch ledger has not settled yet.

    The ledger is Dagster's event log, shared with the sensors: a batch validated or quarantined by
    either is not taken again; one whose validation never finished (a crash) is validated again.

    Args:
        defs: The definitions.
        instance: The Dagster instance.
        landing_dir: The landing folder.
        params: The params.
        fresh: Files this command just wrote itself (complete by construction: no settling wait).

    Returns:
        Batch file name -> whether it was kept.
    """
    from ml_assets.defs.ingestion import BATCH_CHECKS, LANDING_PARTITIONS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib.landing import batch_version, incomplete_reason, label_files

    job = defs.resolve_job_def("ingest_batch_job")
    listing = list_landing(landing_dir)
    for name, why in listing.ignored.items():
        print(f"skipped {name}: {why}")
    ledger = {entry.batch: entry for entry in read_ledger(instance, BATCH_CHECKS)}
    known = set(instance.get_dynamic_partitions(LANDING_PARTITIONS))
    settle = 0.0 if set(fresh) >= {landing_dir / f.name for f in listing.files} else params.automation.settle_seconds
    youngest = max((f.mtime_ns for f in listing.files), default=0)
    if settle and (wait := settle - (time.time_ns() - youngest) / 1e9) > 0:
        print(f"waiting {wait:.0f} s for the newest landed file to be left alone (automation.settle_seconds)")
        time.sleep(wait)
    outcomes: dict[str, bool] = {}
    listing, now = list_landing(landing_dir), time.time_ns()
    waiting = {
        f.name: why
        for f in listing.files
        if (
            why := incomplete_reason(
                landing_dir / f.name, size=f.size, mtime_ns=f.mtime_ns, now_ns=now, settle_seconds=settle
            )
        )
    }
    for name, why in waiting.items():
        print(f"waiting {name}: {why}")
    for landed in (f for f in listing.files if f.labels_for is None and f.name not in waiting):
        path = landing_dir / landed.name
        labels = [p for p in label_files(landing_dir, path) if p.name not in waiting]
        entry = ledger.get(landed.key)
        if entry is not None and entry.landed_md5 == batch_version(path, labels) and entry.status != "pending":
            continue
        if landed.key not in known:
            instance.add_dynamic_partitions(LANDING_PARTITIONS, [landed.key])
        result = job.execute_in_process(
            instance=instance,
            partition_key=landed.key,
            raise_on_error=False,
            run_config=QUIET,
            tags=_cli_tags(),
        )
        outcomes[landed.name] = result.success
        print(f"batch {landed.name}: " + ("validated" if result.success else _failure_line(result)))
    return outcomes


def pending_batches(instance: dg.DagsterInstance, landing_dir: Path) -> list[str]:
    """Landed files the batch ledger has not settled (new content, or a validation that never finished)."""
    from ml_assets.defs.ingestion import BATCH_CHECKS
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib.landing import batch_version, label_files

    ledger = {entry.batch: entry for entry in read_ledger(instance, BATCH_CHECKS)}
    pending = []
    for landed in (f for f in list_landing(landing_dir).files if f.labels_for is None):
        path = landing_dir / landed.name
        entry = ledger.get(landed.key)
        version = batch_version(path, label_files(landing_dir, path))
        if entry is None or entry.status == "pending" or entry.landed_md5 != version:
            pending.append(landed.name)
    return pending


TRAINING_ASSETS = ("training_snapshot", *CODE_VERSIONS)
"""The training side of the graph whose versions decide a retrain, parents first."""


def training_freshness(instance: dg.DagsterInstance, root: Path, params: Params) -> Freshness:
    """Whether training again would change nothing: data versions, code versions, DVC and params unchanged.

    A champion moved outside a training run (a rollback, a pin, an approval) is recorded as a
    `champion_model` materialization without the training run's code version, so it counts as a change.
    """
    from ml_assets.lib.dvc_store import DvcStore
    from ml_assets.lib.freshness import Recorded, training_freshness
    from ml_assets.lib.landing import file_md5
    from ml_assets.lib.snapshot import validated_fingerprint

    records: dict[str, Recorded | None] = {}
    for name in TRAINING_ASSETS:
        found = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        event = found[0].asset_materialization if found else None
        records[name] = (
            Recorded.from_tags(found[0].run_id, event.tags or {}, {k: v.value for k, v in event.metadata.items()})
            if event is not None
            else None
        )
    snapshot = root / params.data.snapshot_path
    return training_freshness(
        records,
        assets=TRAINING_ASSETS,
        code_versions=CODE_VERSIONS,
        validated_fingerprint=validated_fingerprint(root / params.data.validated_dir),
        snapshot_md5_on_disk=file_md5(snapshot) if snapshot.is_file() else None,
        snapshot_md5_in_dvc=DvcStore(root=root, remote_url="")
        .stage_outputs("training_snapshot")
        .get(params.data.snapshot_path),
        params_hash=params.section_hash(),
    )


def _print_recorded_champion(instance: dg.DagsterInstance, params: Params) -> None:
    """The champion and its holdout metrics as Dagster recorded them (MLflow is not even imported)."""

    def metadata(asset: str) -> dict[str, Any]:
        found = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        event = found[0].asset_materialization if found else None
        return {k: v.value for k, v in event.metadata.items()} if event else {}

    evaluation = metadata("model_evaluation")
    print(f"  {'metric':<10} {'champion':>10}")
    for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
        print(f"  {metric:<10} {float(evaluation.get(f'test_{metric}', 'nan')):>10.4f}")
    version = metadata("champion_model").get("champion_version")
    print(f"\nchampion: models:/{params.registry.model_name}@champion = version {version}")


def _stale_cli_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs this command started in-process whose process is gone (kill -9): no daemon will ever end them."""
    import socket

    stale = []
    for record in instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={"ml_assets/trigger": "make_run"})
    ):
        run = record.dagster_run
        pid, host = run.tags.get("ml_assets/pid"), run.tags.get("ml_assets/host")
        if pid and host == socket.gethostname():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                stale.append(run)
    return stale


def _cli_tags() -> dict[str, str]:
    import socket

    return {"ml_assets/trigger": "make_run", "ml_assets/pid": str(os.getpid()), "ml_assets/host": socket.gethostname()}


def run(root: Path) -> int:
    """Validates new batches, trains, gates and promotes headless; prints the outcome in a few lines.

    When nothing changed (no new batch; data versions, code versions, DVC and params as the last
    training run left them) it says so in one line and skips everything.
    """
    params = load_params(root / "params.yaml")
    landing = root / params.data.landing_dir
    with dg.DagsterInstance.get() as instance:
        if landed_files(landing) and not _stale_cli_runs(instance) and not pending_batches(instance, landing):
            verdict = training_freshness(instance, root, params)
            if verdict.fresh:
                print(f"nothing changed (no new batch; {verdict.reason}): skipped ingest and training")
                _print_recorded_champion(instance, params)
                return 0
    from ml_assets.definitions import defs
    from ml_assets.defs.resources import MlflowResource

    fresh = prepare(root, params)
    with dg.DagsterInstance.get() as instance:
        for stale in _stale_cli_runs(instance):
            instance.report_run_failed(stale, message="its `make run` process died; the next run repairs what it left")
            MlflowResource().end_runs(stale.run_id, experiment_name=params.registry.experiment_name, status="FAILED")
            print(f"run {stale.run_id[:8]} of {stale.job_name} died with its process; marked failed")
        training = instance.get_runs(dg.RunsFilter(job_name="training_job", statuses=[dg.DagsterRunStatus.STARTED]))
        if training:
            print(f"a training run is in progress ({training[0].run_id[:8]}); try again when it ends", file=sys.stderr)
            return 3
        ingest_new_batches(defs, instance, root / params.data.landing_dir, params=params, fresh=fresh)
        result = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET, tags=_cli_tags()
        )
        # what the run status sensors do under the daemon: the MLflow run ends with the Dagster run
        MlflowResource().end_runs(
            result.run_id,
            experiment_name=params.registry.experiment_name,
            status="FINISHED" if result.success else "FAILED",
        )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed:
        print(f"gate FAILED: {evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {evaluation.description}")
    if not result.success and not failed:
        print(f"training {_failure_line(result)}", file=sys.stderr)
        return 1
    _print_summary(result, params)
    return 0 if not failed else 2


def _print_summary(result: dg.ExecuteInProcessResult, params: Params) -> None:
    """The candidate and the champion side by side, measured on the same holdout rows."""
    from ml_assets.lib import tracking

    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    if "model_evaluation" not in materialized:
        return
    evaluation = result.output_for_node("model_evaluation")
    comparison = evaluation.comparison
    name = params.registry.model_name
    champion_now = tracking.alias_version(_client(), name, tracking.CHAMPION)
    registered = result.output_for_node("registered_model") if "registered_model" in materialized else None
    print(
        f"\ncandidate {'v' + registered if registered else '(not registered)'} vs "
        f"{'champion v' + comparison.champion_version if comparison.champion_version else 'no champion'} "
        f"on the same {evaluation.metrics.n_rows} holdout rows"
    )
    print(f"  {'metric':<10} {'candidate':>10} {'champion':>10}")
    for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
        champion = f"{getattr(evaluation.champion, metric):>10.4f}" if evaluation.champion else f"{'-':>10}"
        print(f"  {metric:<10} {getattr(evaluation.metrics, metric):>10.4f} {champion}")
    if comparison.blocker:
        print(f"  not compared: {comparison.blocker}")
    print(f"\nchampion: models:/{name}@champion = version {champion_now.version if champion_now else 'none'}")


def _client() -> Any:
    from mlflow import MlflowClient

    uri = resolve_locations(os.environ).mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def reproduce(root: Path, version: str) -> int:
    """Retrains a registered version from its recorded data version and params; compares the metrics."""
    import mlflow
    import mlflow.artifacts as mlflow_artifacts
    from mlflow import MlflowClient

    from ml_assets.defs.training import CONFIG_TAG, ROWS_TAG
    from ml_assets.lib.config import parse_params
    from ml_assets.lib.dvc_store import DvcStore
    from ml_assets.lib.landing import file_md5
    from ml_assets.lib.reproduce import compare_metrics, retrain

    locations = resolve_locations(os.environ, root=str(root))
    client = MlflowClient(tracking_uri=locations.mlflow_tracking_uri, registry_uri=locations.mlflow_tracking_uri)
    name = load_params(root / "params.yaml").registry.model_name
    model_version = client.get_model_version(name, version)
    md5, run_id = model_version.tags["dvc.snapshot_md5"], str(model_version.run_id)
    mlflow.set_tracking_uri(locations.mlflow_tracking_uri)
    params = parse_params(mlflow_artifacts.load_dict(f"runs:/{run_id}/params.json"))
    store = DvcStore(root=root, remote_url=locations.dvc_remote, endpoint_url=locations.dvc_endpoint_url)
    store.ensure_ready()
    path = store.materialize_md5(md5, root / "data" / "reproduce" / f"{md5}.parquet")
    read_back = file_md5(path)
    print(f"{name} v{version}: candidate `{model_version.tags['candidate']}`, data {md5} (read back {read_back})")
    if read_back != md5:
        print(f"data version mismatch: expected {md5}, got {read_back}", file=sys.stderr)
        return 1
    import pandas as pd

    run = client.get_run(run_id)
    config, rows = run.data.tags.get(CONFIG_TAG), run.data.tags.get(ROWS_TAG)
    reproduction = retrain(
        pd.read_parquet(path),
        params,
        candidate=model_version.tags["candidate"],
        config=json.loads(config) if config else None,
        rows=int(rows) if rows else None,
    )
    recorded = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    if not recorded:
        print(f"run {run_id} recorded no test metrics: nothing to compare the reproduction with", file=sys.stderr)
        return 1
    comparison = compare_metrics(recorded, reproduction.metrics)
    print(f"  {'metric':<10} {'recorded':>20} {'reproduced':>20}")
    for metric, was, now in comparison.rows():
        print(f"  {metric:<10} {was:>20.16f} {now:>20.16f}{'' if was == now else '  DIFFERENT'}")
    print("metrics match exactly" if comparison.identical else "metrics DIFFER: the code or environment changed")
    return 0 if comparison.identical else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m ml_assets.cli", description=__doc__)
    parser.add_argument("command", choices=["prepare", "run", "reproduce"])
    parser.add_argument("--version", help="with `reproduce`: the registered model version")
    args = parser.parse_args(argv)
    for category in (dg.PreviewWarning, dg.BetaWarning):
        warnings.filterwarnings("ignore", category=category)
    locations = resolve_locations(os.environ)
    root = locations.root
    if args.command == "prepare":
        prepare(root, load_params(root / "params.yaml"))
        return 0
    try:  # a server that is down: one clear line instead of a traceback after retries
        check_endpoint(locations.mlflow_tracking_uri, variable="MLFLOW_TRACKING_URI")
        if locations.dvc_endpoint_url:
            check_endpoint(locations.dvc_endpoint_url, variable="ML_ASSETS_DVC_ENDPOINT_URL")
    except EndpointUnreachable as error:
        print(error, file=sys.stderr)
        return 2
    if args.command == "reproduce":
        if not args.version:
            parser.error("reproduce needs --version N (make reproduce VERSION=N)")
        return reproduce(root, args.version)
    return run(root)


if __name__ == "__main__":
    raise SystemExit(main())
