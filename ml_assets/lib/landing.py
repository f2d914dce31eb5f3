"""The landing folder: which files are complete batches, what their partition keys are, what is new.

A file is taken only when it is complete:

- it has not been modified for `automation.settle_seconds` (a writer that is still appending keeps
  moving its mtime), and
- its content ends as a whole file does: a CSV ends with a line break (a file cut mid-row does
  not), a Parquet file starts and ends with its `PAR1` magic.

Names starting with a dot are in-progress uploads by convention (rsync, `cp` to `.name.tmp` then
`mv`): they are listed as ignored, with a reason, and never taken. Any other name works: a name
that is not a safe partition key (spaces, unicode, more than 100 characters, ...) maps to one.

A batch is identified by the md5 of its bytes: a copy or a `touch` of known content is not new
data; new content under a known name is a new version of that batch.

Labels that arrive later land as `<batch stem>.labels.csv` (or `.parquet`): the id columns and the
target. They belong to the batch with that stem; the batch's version is then the md5 of its bytes
and of its label files together, so the labelled batch is a new version of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

LANDING_SUFFIXES = (".csv", ".parquet", ".pq")
LABELS_MARK = ".labels"
SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing folder, as one `stat` sees it."""

    name: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """Its partition key (for a label file: the key of the batch it labels)."""
        return partition_key(self.name)

    @property
    def labels_for(self) -> str | None:
        """The stem of the batch this label file labels, or None for a batch file."""
        stem = Path(self.name).stem
        return stem.removesuffix(LABELS_MARK) if stem.endswith(LABELS_MARK) else None


@dataclass(frozen=True)
class Listing:
    """The landing folder: batch files by name, and the files it ignores with the reason."""

    files: list[LandedFile]
    ignored: dict[str, str] = field(default_factory=dict)


def partition_key(name: str) -> str:
    """The Dagster partition key of a landed file name: the name itself when it is safe, else a safe slug.

    A safe key is ASCII letters, digits, `.`, `_` and `-`, at most 100 characters, so it is also a
    valid file name for the batch's validated copy. Any other name maps to its ASCII slug, cut to
    80 characters, plus 8 hex digits of the name's SHA-1, so two names never share a key.
    """
    if SAFE_KEY.fullmatch(name):
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:80] or "batch"
    return f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def list_landing(landing_dir: Path) -> Listing:
    """Lists the batch files (CSV or Parquet) with one `stat` each, by name."""
    if not landing_dir.is_dir():
        return Listing(files=[])
    files, ignored = [], {}
    with os.scandir(landing_dir) as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            if entry.name.startswith("."):
                ignored[entry.name] = "a name starting with a dot is an upload in progress; rename it to land it"
            elif not entry.name.lower().endswith(LANDING_SUFFIXES):
                ignored[entry.name] = f"not a batch file: land {', '.join(LANDING_SUFFIXES)} files"
            else:
                info = entry.stat()
                files.append(LandedFile(entry.name, info.st_size, info.st_mtime_ns))
    return Listing(files=sorted(files, key=lambda f: f.name), ignored=dict(sorted(ignored.items())))


def find_landed_file(landing_dir: Path, key: str) -> Path | None:
    """The landed batch file whose partition key is `key`, or None."""
    for landed in list_landing(landing_dir).files:
        if landed.key == key and landed.labels_for is None:
            return landing_dir / landed.name
    return None


def label_files(landing_dir: Path, batch_file: Path) -> list[Path]:
    """The label files landed for a batch file (`<stem>.labels.csv` / `.parquet`), by name."""
    return [
        landing_dir / f.name
        for f in list_landing(landing_dir).files
        if f.labels_for is not None and f.labels_for == batch_file.stem
    ]


def batch_version(batch_file: Path, labels: list[Path]) -> str:
    """The version of a batch: the md5 of its bytes, or with label files the md5 of all their md5s."""
    md5 = file_md5(batch_file)
    if not labels:
        return md5
    return hashlib.md5("+".join([md5, *(file_md5(p) for p in labels)]).encode()).hexdigest()


def incomplete_reason(path: Path, *, size: int, mtime_ns: int, now_ns: int, settle_seconds: float) -> str | None:
    """Why `path` is not (yet) a complete batch, or None when it can be taken.

    Args:
        path: The file.
        size: Its size from the listing.
        mtime_ns: Its mtime from the listing.
        now_ns: The current time, in ns since the epoch.
        settle_seconds: How long the file must be left alone.
    """
    age = (now_ns - mtime_ns) / 1e9
    if settle_seconds > 0 and age < settle_seconds:
        return f"modified {age:.0f} s ago; taken once left alone for {settle_seconds:g} s"
    if size == 0:
        return "empty; land the complete file"
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(size - 4, 0))
        tail = handle.read(4)
    if path.suffix.lower() == ".csv" and not tail.endswith(b"\n"):
        return "does not end with a line break: it was cut while being written; land the complete file"
    if path.suffix.lower() != ".csv" and (head != b"PAR1" or tail != b"PAR1"):
        return "is not a whole Parquet file (no PAR1 magic at both ends); land the complete file"
    return None


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes, read in 1 MiB chunks (the same hash DVC records)."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class NewBatch:
    """A complete landed file whose content is new under its name."""

    name: str
    key: str
    md5: str


@dataclass
class LandingState:
    """What earlier scans learned: each taken file's stat and md5, and every md5 ever taken."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    seen_md5: set[str] = field(default_factory=set)

    def to_json(self) -> str:
        """Serializes the state (a sensor cursor)."""
        return json.dumps({"files": self.files, "seen": sorted(self.seen_md5)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LandingState:
        """Restores a state from `to_json` output; an empty cursor gives an empty state."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            files={k: (int(v[0]), int(v[1]), str(v[2])) for k, v in data.get("files", {}).items()},
            seen_md5=set(data.get("seen", [])),
        )


@dataclass(frozen=True)
class ScanResult:
    """What one scan found."""

    new: list[NewBatch]
    waiting: dict[str, str]
    state: LandingState
    more: int = 0


def scan(
    listing: Listing,
    state: LandingState,
    *,
    landing_dir: Path,
    now_ns: int,
    settle_seconds: float,
    limit: int,
) -> ScanResult:
    """Finds complete batches whose content is new (at most `limit`; the rest wait for the next scan).

    A file is hashed only when its name, size or mtime is new to `state`, so a steady tick costs a
    `stat` per file. A file that is not complete yet is not recorded in the state, so it is looked
    at again next time: no file is ever skipped.

    Args:
        listing: The landing folder.
        state: The state after the previous scan (not modified).
        landing_dir: The folder (to read new files).
        now_ns: The current time in ns.
        settle_seconds: See `incomplete_reason`.
        limit: The most new batches to return; the count of the others is `more`.

    Returns:
        The new batches in name order, the files still waiting with why, and the next state.
    """
    files, seen = dict(state.files), set(state.seen_md5)
    new: list[NewBatch] = []
    waiting: dict[str, str] = {}
    more = 0
    batches = {Path(f.name).stem: f for f in listing.files if f.labels_for is None}
    for landed in listing.files:
        labelled = batches.get(landed.labels_for) if landed.labels_for is not None else None
        if landed.labels_for is not None and labelled is None:
            waiting[landed.name] = f"labels for batch `{landed.labels_for}`, which has not landed; land it first"
            continue
        known = files.get(landed.name)
        if known is not None and known[:2] == (landed.size, landed.mtime_ns):
            continue
        path = landing_dir / landed.name
        reason = incomplete_reason(
            path, size=landed.size, mtime_ns=landed.mtime_ns, now_ns=now_ns, settle_seconds=settle_seconds
        )
        if reason:
            waiting[landed.name] = reason
            continue
        if len(new) >= limit:
            more += 1
            continue
        md5 = file_md5(path)
        files[landed.name] = (landed.size, landed.mtime_ns, md5)
        if known is not None and known[2] == md5:
            continue  # touched, same bytes
        if md5 in seen and known is None:
            continue  # a copy of content already taken under another name
        seen.add(md5)
        new.append(NewBatch(landed.name, labelled.key if labelled else landed.key, md5))
    return ScanResult(new=new, waiting=waiting, state=LandingState(files=files, seen_md5=seen), more=more)
