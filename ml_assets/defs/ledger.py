"""The batch ledger, read from Dagster's event log: the one book `make run`, the sensors and the UI share.

For each landed batch: the version that landed last (its md5 is the data version of
`landed_batch`), its rows, and whether its checks on *that* materialization passed (it was kept),
failed (quarantined), or never finished (pending: validate it again). A materialization without
check results is not done, unless the same bytes were kept before: a batch re-validated unchanged
stays validated unless its new checks fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from ml_assets.lib.ledger import BatchEntry

LANDED, VALIDATED = dg.AssetKey("landed_batch"), dg.AssetKey("validated_batch")


def _latest_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Sequence[str] | None
) -> dict[str, dg.EventLogRecord]:
    latest: dict[str, dg.EventLogRecord] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=list(partitions) if partitions else None),
            limit=1000,
            cursor=cursor,
            ascending=False,
        )
        for record in page.records:
            if record.partition_key is not None:
                latest.setdefault(record.partition_key, record)
        if not page.has_more:
            return latest
        cursor = page.cursor


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}


def landed_md5(record: dg.EventLogRecord) -> str:
    """The data version (md5 of the bytes) of a `landed_batch` materialization."""
    materialization = record.asset_materialization
    return str((materialization.tags or {}).get("dagster/data_version", "")) if materialization else ""


def landed_version(instance: dg.DagsterInstance, batch: str) -> str:
    """The md5 of the version of `batch` that landed last."""
    record = _latest_by_partition(instance, LANDED, [batch]).get(batch)
    if record is None:
        raise dg.Failure(f"batch `{batch}` has no `landed_batch` materialization; materialize it first")
    return landed_md5(record)


def read_ledger(
    instance: dg.DagsterInstance, check_names: Iterable[str], *, batches: Sequence[str] | None = None
) -> list[BatchEntry]:
    """One entry per landed batch (or per named batch that has landed), latest version first-class.

    Args:
        instance: The Dagster instance.
        check_names: The blocking checks of `landed_batch`.
        batches: Only these partition keys (all when None).

    Returns:
        The entries, by batch.
    """
    landed = _latest_by_partition(instance, LANDED, batches)
    if not landed:
        return []
    validated = _latest_by_partition(instance, VALIDATED, list(landed))
    check_keys = [dg.AssetCheckKey(LANDED, name) for name in check_names]
    infos = instance.event_log_storage.get_asset_check_partition_info(check_keys, partition_keys=list(landed))
    outcome: dict[str, dict[str, Any]] = {}
    for info in infos:
        if info.partition_key is None:
            continue
        current = info.latest_target_materialization_storage_id == landed[info.partition_key].storage_id
        outcome.setdefault(info.partition_key, {})[info.check_key.name] = (
            info.latest_execution_status.value if current else None
        )
    entries = []
    for batch, record in sorted(landed.items()):
        md5, rows = landed_md5(record), int(_metadata(record).get("dagster/row_count", 0))
        kept = validated.get(batch)
        checks = outcome.get(batch, {})
        failed = sorted(name for name, status in checks.items() if status == "FAILED")
        kept_md5 = _metadata(kept).get("source_md5") if kept is not None else None
        if kept is not None and kept_md5 == md5 and (kept.storage_id > record.storage_id or not failed):
            # Kept after this version landed; or these very bytes were kept before and are being
            # validated again ("Materialize all", a backfill): their validated rows stand until that fails.
            entries.append(BatchEntry(batch, md5, rows, "validated"))
        elif failed:
            entries.append(BatchEntry(batch, md5, rows, "quarantined", f"failed checks: {', '.join(failed)}"))
        else:
            done = sum(status == "SUCCEEDED" for status in checks.values())
            detail = f"{done} of {len(check_keys)} checks passed on this version; validation did not finish"
            entries.append(BatchEntry(batch, md5, rows, "pending", detail))
    return entries
