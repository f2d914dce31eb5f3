"""Ingestion: landed batches, their Great Expectations checks, and the training snapshot.

Every file landed in the landing folder is one batch (a dynamic partition), checked on its own by
the suite; the batches that pass are unioned into the DVC-pinned training snapshot.
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from ml_assets.defs.graph import OWNERS, RETRY, TRAINING_POOL
from ml_assets.defs.resources import ProjectResource
from ml_assets.lib import snapshot as snapshot_lib
from ml_assets.lib.landing import batch_version, find_landed_file, incomplete_reason, label_files
from ml_assets.lib.suite_inference import CHECK_CATEGORIES, InferenceSpec
from ml_assets.lib.validation import CheckVerdict

LANDING_PARTITIONS = "landing_batches"
landing_batches = dg.DynamicPartitionsDefinition(name=LANDING_PARTITIONS)

BATCH_CHECKS = CHECK_CATEGORIES
"""One blocking check per group of expectations (the `meta.check` of each expectation in the suite)."""


@dg.asset(
    partitions_def=landing_batches,
    group_name="ingestion",
    kinds={"pandas", "csv"},
    owners=OWNERS,
    code_version="1",
)
def landed_batch(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output[pd.DataFrame]:
    """One file from the landing folder, read as it arrived (CSV or Parquet), not yet trusted.

    The partition key is the file name (or a safe key made from it); the data version is the md5 of
    its bytes, so a renamed or touched copy of the same file is the same data. New bytes under a
    known name are a new version of the batch: the old version's validated rows leave the snapshot.
    """
    params = project.params()
    landing = project.path(params.data.landing_dir)
    path = find_landed_file(landing, context.partition_key)
    if path is None:
        raise dg.Failure(
            f"batch `{context.partition_key}` is registered but no file in `{landing}` maps to it any more; "
            "land the file again or delete the partition in the UI"
        )
    labels = label_files(landing, path)
    for file in (path, *labels):
        stat = file.stat()
        incomplete = incomplete_reason(file, size=stat.st_size, mtime_ns=stat.st_mtime_ns, now_ns=0, settle_seconds=0)
        if incomplete:
            raise dg.Failure(f"`{file.name}` {incomplete}; nothing was validated")
    frame = snapshot_lib.read_landed_batch(path)
    if labels:
        names = ", ".join(f.name for f in labels)
        try:
            frame = snapshot_lib.apply_labels(
                frame,
                pd.concat([snapshot_lib.read_landed_batch(f) for f in labels], ignore_index=True),
                id_columns=params.data.id_columns,
                target=params.data.target,
                name=names,
            )
        except ValueError as error:
            raise dg.Failure(f"batch `{path.name}`: {error}") from error
        context.log.info(f"batch `{path.name}`: labels joined from {names}")
    md5 = batch_version(path, labels)
    superseded = snapshot_lib.supersede(project.path(params.data.validated_dir), context.partition_key, landed_md5=md5)
    if superseded:
        context.log.warning(f"batch `{path.name}` has a new version; the old one moved to `{superseded}`")
    null_share = {str(c): float(v) for c, v in pd.Series(frame.isna().mean()).items()}
    target = params.data.target
    balance = (
        {str(k): float(v) for k, v in pd.Series(frame[target]).value_counts(normalize=True).items()}
        if target in frame
        else {}
    )
    return dg.Output(
        frame,
        data_version=dg.DataVersion(md5),
        metadata={
            "file": dg.MetadataValue.path(str(path)),
            "file_name": path.name,
            "md5": md5,
            "dagster/row_count": len(frame),
            "dagster/column_schema": _schema(frame),
            "null_share": dg.MetadataValue.json({c: round(v, 4) for c, v in null_share.items()}),
            "class_balance": dg.MetadataValue.json({c: round(v, 4) for c, v in balance.items()}),
            "profile": _profile(null_share, balance, batch=context.partition_key),
        },
    )


def _schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes, shown as the asset's column schema in the UI."""
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])


def _profile(null_share: dict[str, float], balance: dict[str, float], *, batch: str) -> dg.MetadataValue:
    """Null share per column and class balance, as a chart."""
    from ml_assets.lib import plots

    png = plots.batch_profile_png(null_share, balance or {"(no target)": 1.0}, title=f"Batch `{batch}`")
    return dg.MetadataValue.md(plots.as_markdown_image(png, alt="batch profile"))


def _batch_check_specs() -> list[dg.AssetCheckSpec]:
    """One partitioned spec per category: each batch has its own verdict, which per-batch automation reads.

    Partitioned checks are a Dagster preview feature; its PreviewWarning is silenced here because
    nothing else gives a verdict per batch and a newcomer can do nothing about it at start-up.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")
        return [
            dg.AssetCheckSpec(
                name,
                asset=landed_batch,
                blocking=True,
                partitions_def=landing_batches,
                description=f"Great Expectations: {name.replace('_', ' ')}",
            )
            for name in BATCH_CHECKS
        ]


@dg.multi_asset_check(specs=_batch_check_specs(), can_subset=False)
def landed_batch_expectations(
    context: dg.AssetCheckExecutionContext, project: ProjectResource, landed_batch: pd.DataFrame
) -> Iterator[dg.AssetCheckResult]:
    """Runs the GX checkpoint of the `gx/` project on one batch; each group of expectations is one check."""
    from ml_assets.lib import validation

    params = project.params()
    batch, suite_path = context.partition_key, params.validation.suite_path
    spec = InferenceSpec.from_params(params)
    report = validation.validate_batch(
        landed_batch,
        root=project.path("."),
        suite_path=suite_path,
        batch_name=batch,
        spec=spec,
        labelled=params.data.target in landed_batch.columns,  # scoring data: judged without its target
    )
    if report.inferred:
        context.log.warning(
            f"batch `{batch}`: no suite at `{suite_path}`: inferred one from this batch; "
            + (
                "its columns, dtypes, ranges and domains were not judged on it. Review the suite and commit it."
                if report.kept
                else "the batch failed what could be judged, so the suite was not kept; the next batch infers again."
            )
        )
    link = project.data_docs_link(report.page)
    for verdict in report.verdicts.values():
        yield _check_result(verdict, batch=batch, link=link)


def _check_result(verdict: CheckVerdict, *, batch: str, link: str) -> dg.AssetCheckResult:
    """One category's verdict as a check result, linking the Data Docs page of the validation."""
    failed, n = verdict.failures(), len(verdict.outcomes)
    summary = "; ".join(
        f"`{o.expectation}`" + (f" on `{o.column}`" if o.column else "") + f": observed {o.observed}"
        for o in failed[:5]
    )
    description = {
        "passed": f"batch `{batch}`: all {n} expectations passed",
        "failed": f"batch `{batch}`: {len(failed)} of {n} expectations failed: {summary}. The batch is kept out of "
        "the training snapshot; the champion is unchanged. Fix the file and land it again.",
        "not_judged": f"batch `{batch}`: not judged: these {n} expectations were inferred from this batch; "
        "review `gx/expectations/` and commit it",
        "skipped": f"batch `{batch}`: skipped: the batch has no labels",
    }[verdict.status]
    columns = ("expectation", "column", "expected", "observed", "success")
    records = [
        dg.TableRecord(
            {"expectation": o.expectation, "column": o.column or "", "expected": o.expected}
            | {"observed": str(o.observed), "success": bool(o.success)}
        )
        for o in verdict.outcomes
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "bool" if c == "success" else "string") for c in columns])
    metadata: dict[str, Any] = {
        "status": verdict.status,
        "failed": len(failed),
        "evaluated": n,
        "expectations": dg.MetadataValue.table(records=records, schema=schema),
        "data_docs": dg.MetadataValue.url(link),
    }
    return dg.AssetCheckResult(
        check_name=verdict.check,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


@dg.asset(
    partitions_def=landing_batches,
    group_name="ingestion",
    kinds={"parquet"},
    owners=OWNERS,
    code_version="1",
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
)
def validated_batch(
    context: dg.AssetExecutionContext, project: ProjectResource, landed_batch: pd.DataFrame
) -> dg.MaterializeResult:
    """A batch that passed every blocking expectation, copied as Parquet into the validated folder.

    It exists only when its checks passed: a blocking check failure stops the run before this step.
    """
    from ml_assets.defs.ledger import landed_version

    out = snapshot_lib.validated_batch_path(project.path(project.params().data.validated_dir), context.partition_key)
    md5 = landed_version(context.instance, context.partition_key)
    snapshot_lib.write_validated(landed_batch, out, source_md5=md5)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "source_md5": md5,
            "dagster/row_count": len(landed_batch),
            "labelled_rows": int(landed_batch[target].notna().sum())
            if (target := project.params().data.target) in landed_batch
            else 0,
            "dagster/column_schema": _schema(landed_batch),
        }
    )


@dg.asset(
    deps=[validated_batch],
    group_name="ingestion",
    kinds={"parquet", "dvc"},
    owners=OWNERS,
    code_version="1",
    retry_policy=RETRY,
    pool=TRAINING_POOL,
    check_specs=[dg.AssetCheckSpec("rows_accounted_for", asset="training_snapshot", blocking=True)],
)
def training_snapshot(context: dg.AssetExecutionContext, project: ProjectResource) -> Iterator[Any]:
    """The union of every validated batch, written as Parquet, committed to DVC and pushed to its remote.

    Its data version is the DVC md5 of the file, so the same batches give the same version and
    nothing downstream retrains. Its check balances the row ledger: every landed row is validated,
    quarantined or pending, and every validated row is in the snapshot (or an exact duplicate).
    """
    from ml_assets.defs.ledger import read_ledger
    from ml_assets.lib.ledger import reconcile

    params = project.params()
    out = project.path(params.data.snapshot_path)
    snapshot = snapshot_lib.build_snapshot(project.path(params.data.validated_dir), out, target=params.data.target)
    store = project.dvc()
    md5 = store.commit_stage("training_snapshot")[params.data.snapshot_path]
    pushed = store.push("training_snapshot")
    frame = snapshot.frame
    context.log.info(f"snapshot {len(frame)} rows, md5 {md5}; pushed {pushed} file(s) to the DVC remote")
    ledger = reconcile(read_ledger(context.instance, BATCH_CHECKS), snapshot)
    yield dg.Output(
        frame,
        data_version=dg.DataVersion(md5),
        metadata={
            "dvc_md5": md5,
            "validated_fingerprint": snapshot_lib.validated_fingerprint(project.path(params.data.validated_dir)),
            "path": dg.MetadataValue.path(str(out)),
            "dagster/row_count": len(frame),
            "rows_by_batch": dg.MetadataValue.json(
                {k: v - snapshot.duplicates_dropped[k] for k, v in snapshot.validated_rows.items()}
            ),
            "class_balance": dg.MetadataValue.json(
                {str(k): round(float(v), 4) for k, v in frame[params.data.target].value_counts(normalize=True).items()}
            ),
            "dagster/column_schema": _schema(frame),
        },
    )
    yield dg.AssetCheckResult(
        check_name="rows_accounted_for",
        passed=ledger.balanced,
        severity=dg.AssetCheckSeverity.ERROR,
        description=ledger.summary(),
        metadata={**ledger.totals, "ledger": dg.MetadataValue.table([dg.TableRecord(r) for r in ledger.rows])},
    )
