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


def union_batches(frames: dict[str, pd.DataFrame]) -> Snapshot:
    """Concatenates validated batches in name order, tagging each row with its batch.

    Rows that repeat an earlier row exactly (the same data landed twice) are kept once, and
    counted per batch in `duplicates_dropped`, so every validated row is accounted for.

    Args:
        frames: Batch name -> its validated rows.

    Returns:
        The snapshot and its books.
    """
    if not frames:
        raise ValueError("no validated batches: land a file and let its checks pass before building the snapshot")
    parts = [frame.assign(**{BATCH_COLUMN: name}) for name, frame in sorted(frames.items())]
    union = pd.concat(parts, ignore_index=True)
    repeated = union.duplicated(subset=[c for c in union.columns if c != BATCH_COLUMN], keep="first")
    dropped = union.loc[repeated, BATCH_COLUMN].value_counts()
    return Snapshot(
        frame=union.loc[~repeated].reset_index(drop=True),
        validated_rows={name: len(frame) for name, frame in sorted(frames.items())},
        duplicates_dropped={name: int(dropped.get(name, 0)) for name in sorted(frames)},
    )


def build_snapshot(validated_dir: Path, out: Path) -> Snapshot:
    """Reads every validated batch, unions them and writes the snapshot Parquet.

    Args:
        validated_dir: Folder of `<batch>.parquet` files.
        out: Where to write the snapshot.

    Returns:
        The snapshot and its books.
    """
    paths = sorted(validated_dir.glob("*.parquet"))
    snapshot = replace(
        union_batches({p.name.removesuffix(".parquet"): pd.read_parquet(p) for p in paths}),
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
    args = parser.parse_args(argv)
    snapshot = build_snapshot(args.validated, args.out)
    print(f"wrote {len(snapshot.frame)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
