"""The training snapshot: the union of every batch that passed validation, as one Parquet file.

Its bytes depend only on the validated batches (sorted by name, duplicates dropped), so the same
batches always give the same file and therefore the same DVC md5.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

BATCH_COLUMN = "_batch"  # lineage: which landed file a row came from; never a feature


def validated_batch_path(validated_dir: Path, batch: str) -> Path:
    """Where the validated copy of a landed batch lives (`<batch file name>.parquet`)."""
    return validated_dir / f"{batch}.parquet"


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


def union_batches(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenates validated batches in name order, tagging each row with its batch.

    Rows that repeat an earlier row exactly (the same data landed twice) are kept once.

    Args:
        frames: Batch name -> its validated rows.

    Returns:
        The snapshot, with a `_batch` column.
    """
    if not frames:
        raise ValueError("no validated batches: land a file and let its checks pass before building the snapshot")
    parts = [frame.assign(**{BATCH_COLUMN: name}) for name, frame in sorted(frames.items())]
    snapshot = pd.concat(parts, ignore_index=True)
    data_columns = [c for c in snapshot.columns if c != BATCH_COLUMN]
    return snapshot.loc[~snapshot.duplicated(subset=data_columns, keep="first")].reset_index(drop=True)


def build_snapshot(validated_dir: Path, out: Path) -> pd.DataFrame:
    """Reads every validated batch, unions them and writes the snapshot Parquet.

    Args:
        validated_dir: Folder of `<batch>.parquet` files.
        out: Where to write the snapshot.

    Returns:
        The snapshot frame.
    """
    frames = {p.name.removesuffix(".parquet"): pd.read_parquet(p) for p in sorted(validated_dir.glob("*.parquet"))}
    snapshot = union_batches(frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.to_parquet(out, index=False)
    return snapshot


def main(argv: Sequence[str] | None = None) -> int:
    """`dvc repro training_snapshot` runs this: rebuild the snapshot from the validated batches."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--validated", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    snapshot = build_snapshot(args.validated, args.out)
    print(f"wrote {len(snapshot)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
