"""The training snapshot: the union of every batch that passed validation, as one Parquet file.

Its bytes depend only on the validated batches (sorted by name, duplicates dropped), so the same
batches always give the same file and therefore the same DVC md5.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

BATCH_COLUMN = "_batch"  # lineage: which landed file a row came from; never a feature


SOURCE_MD5 = b"ml_assets.source_md5"  # Parquet schema metadata of a validated copy: the landed bytes it came from


def validated_batch_path(validated_dir: Path, batch: str) -> Path:
    """Where the validated copy of a landed batch lives (`<partition key>.parquet`)."""
    return validated_dir / f"{batch}.parquet"


def write_validated(frame: pd.DataFrame, out: Path, *, source_md5: str) -> None:
    """Writes a validated copy atomically, recording the md5 of the landed file it came from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), SOURCE_MD5: source_md5.encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)  # atomic: the snapshot never reads a half-written batch


def validated_source_md5(path: Path) -> str | None:
    """The landed md5 a validated copy came from (None for a copy written before it was recorded)."""
    import pyarrow.parquet as pq

    value = (pq.read_schema(path).metadata or {}).get(SOURCE_MD5)
    return value.decode() if value else None


def supersede(validated_dir: Path, batch: str, *, landed_md5: str) -> Path | None:
    """Moves the validated copy of an older version of `batch` out of the snapshot's folder.

    A batch re-landed with new bytes is a new version: from then on the old version's rows leave
    the next snapshot (they are kept, for audit, under `<validated_dir>/superseded/`), and come back
    only as the new version's rows once those pass every check.

    Returns:
        Where the old copy went, or None when there was none or it is this version.
    """
    current = validated_batch_path(validated_dir, batch)
    if not current.is_file():
        return None
    old = validated_source_md5(current)
    if old == landed_md5:
        return None
    target = validated_dir / "superseded" / f"{batch}.{old or 'unknown'}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    current.replace(target)
    return target


def read_validated(validated_dir: Path, batches: Sequence[str], *, target: str) -> pd.DataFrame:
    """The labelled rows of the named validated batches (those still kept), one frame."""
    frames = [pd.read_parquet(p) for b in batches if (p := validated_batch_path(validated_dir, b)).is_file()]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[target])
    return rows.dropna(subset=[target]) if target in rows else rows.iloc[0:0]


def validated_fingerprint(validated_dir: Path) -> str:
    """Identifies the set of validated batches (names and sizes) without reading them.

    The weekly schedule compares it with the one recorded by the last snapshot to decide whether
    anything changed.
    """
    import hashlib

    entries = (
        sorted((p.name, p.stat().st_size) for p in validated_dir.glob("*.parquet")) if validated_dir.is_dir() else []
    )
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:12]


def read_landed_batch(path: Path) -> pd.DataFrame:
    """Reads one landed batch, CSV or Parquet.

    Args:
        path: The landed file.

    Returns:
        Its rows, types as the file gives them.

    Raises:
        ValueError: The file type is not supported or the file cannot be parsed.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as error:
        raise ValueError(
            f"batch `{path.name}` cannot be read as {suffix[1:]}: {error}; fix or remove the file"
        ) from error
    raise ValueError(f"batch `{path.name}`: unsupported file type `{suffix}`; land .csv or .parquet files")


def apply_labels(
    batch: pd.DataFrame, labels: pd.DataFrame, *, id_columns: Sequence[str], target: str, name: str
) -> pd.DataFrame:
    """Joins late labels onto a batch by its id columns; a label overrides a missing target, never a present one.

    Args:
        batch: The landed rows.
        labels: Rows of the id columns and the target (one or more label files, concatenated).
        id_columns: The columns that identify a row (`data.id_columns`).
        target: The label column.
        name: The label file(s), for messages.

    Returns:
        The batch with its target filled where a label matched.

    Raises:
        ValueError: The labels lack a column, repeat an id with two labels, or match no row.
    """
    keys = [c for c in id_columns if c in batch.columns]
    missing = sorted({*keys, target} - set(labels.columns))
    if not keys or missing:
        raise ValueError(
            f"label file `{name}` needs the id columns {list(id_columns)} and `{target}` (missing: {missing or keys}); "
            "it was not applied"
        )
    labels = pd.DataFrame(labels.loc[:, [*keys, target]]).drop_duplicates()
    if labels.duplicated(subset=keys).any():
        raise ValueError(f"label file `{name}` gives two labels for the same id; it was not applied")
    joined = batch.merge(labels, on=keys, how="left", suffixes=("", "__label"), validate="many_to_one")
    late = f"{target}__label" if target in batch.columns else target
    matched = int(joined[late].notna().sum())
    if matched == 0:
        raise ValueError(
            f"label file `{name}` matches no row of the batch on {keys}; it was not applied. "
            "Check the ids, or land the batch again with its labels"
        )
    if late != target:
        joined[target] = joined[target].combine_first(joined.pop(late))
    return joined


@dataclass(frozen=True)
class Snapshot:
    """The union of the validated batches and its books.

    Attributes:
        frame: The rows, with a `_batch` column.
        validated_rows: Batch -> rows in its validated copy.
        duplicates_dropped: Batch -> rows dropped because they repeat an earlier row exactly.
        source_md5: Batch -> the landed md5 its validated copy came from.
    """

    frame: pd.DataFrame
    validated_rows: dict[str, int]
    duplicates_dropped: dict[str, int]
    source_md5: dict[str, str | None] = field(default_factory=dict)
    unlabelled: dict[str, int] = field(default_factory=dict)


def union_batches(frames: dict[str, pd.DataFrame], *, target: str | None = None) -> Snapshot:
    """Concatenates validated batches in name order, tagging each row with its batch.

    Rows that repeat an earlier row exactly (the same data landed twice) are kept once, and
    counted per batch in `duplicates_dropped`, so every validated row is accounted for. Rows
    without a label (scoring data whose labels have not arrived) never enter training; they are
    counted per batch in `unlabelled`.

    Args:
        frames: Batch name -> its validated rows.
        target: The label column; when given, unlabelled rows are left out.

    Returns:
        The snapshot and its books.
    """
    unlabelled: dict[str, int] = {}
    if target is not None:
        for name, frame in list(frames.items()):
            labelled = frame.loc[frame[target].notna()] if target in frame else frame.iloc[0:0]
            if len(labelled) < len(frame):
                unlabelled[name] = len(frame) - len(labelled)
            frames = {**frames, name: labelled}
        frames = {k: v for k, v in frames.items() if len(v)}
    if not frames:
        raise ValueError("no labelled validated batches: land a file with its labels and let its checks pass first")
    parts = [frame.assign(**{BATCH_COLUMN: name}) for name, frame in sorted(frames.items())]
    union = pd.concat(parts, ignore_index=True)
    repeated = union.duplicated(subset=[c for c in union.columns if c != BATCH_COLUMN], keep="first")
    dropped = union.loc[repeated, BATCH_COLUMN].value_counts()
    return Snapshot(
        frame=union.loc[~repeated].reset_index(drop=True),
        validated_rows={name: len(frame) for name, frame in sorted(frames.items())},
        duplicates_dropped={name: int(dropped.get(name, 0)) for name in sorted(frames)},
        unlabelled=unlabelled,
    )


def build_snapshot(validated_dir: Path, out: Path, *, target: str | None = None) -> Snapshot:
    """Reads every validated batch, unions them and writes the snapshot Parquet.

    Args:
        validated_dir: Folder of `<batch>.parquet` files.
        out: Where to write the snapshot.
        target: The label column: unlabelled rows stay out.

    Returns:
        The snapshot and its books.
    """
    paths = sorted(validated_dir.glob("*.parquet"))
    snapshot = replace(
        union_batches({p.name.removesuffix(".parquet"): pd.read_parquet(p) for p in paths}, target=target),
        source_md5={p.name.removesuffix(".parquet"): validated_source_md5(p) for p in paths},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.frame.to_parquet(out, index=False)
    return snapshot


def main(argv: Sequence[str] | None = None) -> int:
    """`dvc repro training_snapshot` runs this: rebuild the snapshot from the validated batches."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--validated", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    from ml_assets.lib.config import load_params

    snapshot = build_snapshot(args.validated, args.out, target=load_params(args.params).data.target)
    print(f"wrote {len(snapshot.frame)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
