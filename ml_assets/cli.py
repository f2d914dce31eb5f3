"""Command line: `python -m ml_assets.cli prepare|run` (what `make dev` and `make run` call)."""

import argparse
import datetime as dt
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from ml_assets.lib.config import Params, load_params
from ml_assets.lib.landing import list_landing
from ml_assets.lib.settings import EndpointUnreachable, check_endpoint, resolve_locations

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def landed_files(landing_dir: Path) -> list[Path]:
    """The batch files in the landing folder, by name."""
    return [landing_dir / stat.name for stat in list_landing(landing_dir)]


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


def ingest_new_batches(defs: dg.Definitions, instance: dg.DagsterInstance, landing_dir: Path) -> dict[str, bool]:
    """Runs the ingest job for every landed file whose bytes have not been ingested under its name yet.

    Returns:
        Batch name -> whether all its checks passed.
    """
    from ml_assets.defs.ingestion import LANDING_PARTITIONS
    from ml_assets.lib.landing import file_md5

    job = defs.resolve_job_def("ingest_batch_job")
    outcomes: dict[str, bool] = {}
    known = set(instance.get_dynamic_partitions(LANDING_PARTITIONS))
    for path in landed_files(landing_dir):
        key = path.name
        if key not in known:
            instance.add_dynamic_partitions(LANDING_PARTITIONS, [key])
        elif _ingested_version(instance, key) == file_md5(path):
            continue
        result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET)
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        outcomes[key] = not failed and result.success
        print(f"batch {key}: " + ("validated" if outcomes[key] else f"REJECTED by checks {failed}"))
    return outcomes


def _ingested_version(instance: dg.DagsterInstance, key: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("landed_batch"), asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    return materialization.tags.get("dagster/data_version") if materialization and materialization.tags else None


def run(root: Path) -> int:
    """Materializes the whole graph headless and prints the champion."""
    from ml_assets.definitions import defs
    from ml_assets.lib import tracking

    params = load_params(root / "params.yaml")
    prepare(root, params)
    with dg.DagsterInstance.get() as instance:
        ingest_new_batches(defs, instance, root / params.data.landing_dir)
        result = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET
        )
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed_checks:
        print(f"gate FAILED: {evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {evaluation.description}")
    if not result.success and not failed_checks:
        print("training run failed; see the run in the Dagster UI (make dev) for the step that failed", file=sys.stderr)
        return 1
    from mlflow import MlflowClient

    uri = resolve_locations(os.environ, root=str(root)).mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = tracking.alias_version(client, params.registry.model_name, tracking.CHAMPION)
    if champion is None:
        print("no champion: the first model did not pass its gates")
        return 1
    metrics = {k.removeprefix("test_"): v for k, v in champion.tags.items() if k.startswith("test_")}
    print(f"\nchampion: models:/{params.registry.model_name}@champion = version {champion.version}")
    print(f"  trained on snapshot {champion.tags.get('dvc.snapshot_md5')} ({champion.tags.get('candidate')})")
    print(f"  {'metric':<10} {'holdout':>8}")
    for name in ("accuracy", "f1", "roc_auc", "log_loss"):
        print(f"  {name:<10} {float(metrics.get(name, 'nan')):>8.4f}")
    return 0 if not failed_checks else 2


def reproduce(root: Path, version: str) -> int:
    """Retrains a registered version from its recorded data version and params; compares the metrics."""
    import mlflow
    import mlflow.artifacts as mlflow_artifacts
    from mlflow import MlflowClient

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

    reproduction = retrain(pd.read_parquet(path), params, candidate=model_version.tags["candidate"])
    recorded = {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("test_")}
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
