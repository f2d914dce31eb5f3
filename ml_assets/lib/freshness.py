"""Is the trained graph up to date? The test `make run` applies before it trains anything.

An asset is fresh when its last materialization ran the code version the asset has now and read
the data versions its parents hold now; that is Dagster's own definition of stale, applied to
the records Dagster keeps (`dagster/code_version`, `dagster/input_data_version/<parent>` and
`dagster/data_version` tags). On top of that the snapshot must still be what DVC recorded, the
validated batches must be the ones it was built from, and `params.yaml` must hash as it did when
the champion was registered (a threshold that only changes a gate's verdict counts too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INPUT_VERSION_PREFIX = "dagster/input_data_version/"


@dataclass(frozen=True)
class Recorded:
    """What Dagster recorded on an asset's latest materialization."""

    run_id: str
    data_version: str | None
    code_version: str | None
    inputs: Mapping[str, str]
    metadata: Mapping[str, object]

    @classmethod
    def from_tags(cls, run_id: str, tags: Mapping[str, str], metadata: Mapping[str, object]) -> Recorded:
        """Reads Dagster's data-version tags of a materialization.

        Args:
            run_id: The run that materialized it.
            tags: The materialization's tags.
            metadata: Its metadata values (plain values, not Dagster metadata objects).

        Returns:
            The record.
        """
        return cls(
            run_id=run_id,
            data_version=tags.get("dagster/data_version"),
            code_version=tags.get("dagster/code_version"),
            inputs={
                k.removeprefix(INPUT_VERSION_PREFIX): v for k, v in tags.items() if k.startswith(INPUT_VERSION_PREFIX)
            },
            metadata=metadata,
        )


@dataclass(frozen=True)
class Freshness:
    """The verdict: up to date or not, and the first reason why not."""

    fresh: bool
    reason: str


def training_freshness(
    records: Mapping[str, Recorded | None],
    *,
    assets: Sequence[str],
    code_versions: Mapping[str, str],
    validated_fingerprint: str,
    snapshot_md5_on_disk: str | None,
    snapshot_md5_in_dvc: str | None,
    params_hash: str,
) -> Freshness:
    """Decides whether training again would change nothing.

    Args:
        records: Asset name -> its latest materialization (None when never materialized).
        assets: The training side of the graph, parents first, `training_snapshot` first.
        code_versions: Asset name -> the code version it has now.
        validated_fingerprint: The validated batches now (`snapshot.validated_fingerprint`).
        snapshot_md5_on_disk: md5 of the snapshot file now (None when it is missing).
        snapshot_md5_in_dvc: md5 that `dvc.lock` records for it.
        params_hash: `Params.section_hash()` of `params.yaml` now.

    Returns:
        Fresh, or the first reason it is not (an asset, what changed).
    """
    snapshot = records.get(assets[0])
    if snapshot is None:
        return Freshness(False, f"`{assets[0]}` was never materialized")
    if snapshot.metadata.get("validated_fingerprint") != validated_fingerprint:
        return Freshness(False, "the validated batches changed since the last snapshot")
    if snapshot_md5_on_disk is None or snapshot_md5_on_disk != snapshot.data_version:
        return Freshness(False, "the snapshot file is missing or differs from its recorded data version")
    if snapshot_md5_in_dvc != snapshot.data_version:
        return Freshness(False, "dvc.lock does not record the snapshot's data version (`dvc status` shows it)")
    for name in assets:
        record = records.get(name)
        if record is None:
            return Freshness(False, f"`{name}` was never materialized after its parents")
        if name in code_versions and record.code_version != code_versions[name]:
            return Freshness(False, f"`{name}`: code version {record.code_version} -> {code_versions[name]}")
        for parent, version in record.inputs.items():
            parent_record = records.get(parent)
            if parent in records and (parent_record is None or parent_record.data_version != version):
                return Freshness(False, f"`{name}` was computed from an older `{parent}`")
    registered = records.get("registered_model")
    if registered is not None and registered.metadata.get("params_hash") != params_hash:
        return Freshness(False, "params.yaml changed since the champion was registered")
    return Freshness(True, f"data version {snapshot.data_version}, code versions and params unchanged")
