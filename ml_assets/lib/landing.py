"""Spotting new data in the landing folder by content, not by name or mtime.

A file is hashed only when its name, size or mtime is new to the scan state, so a tick costs a
`stat` per file plus a hash per changed file. A batch is new when its md5 has never been seen: a
copy, a rename or a `touch` of known data is not new data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LANDING_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class FileStat:
    """What a directory listing says about one file."""

    name: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class NewBatch:
    """A landed file whose content has not been seen before."""

    name: str
    md5: str


@dataclass
class LandingState:
    """What earlier scans learned: each file's stat and md5, and every md5 ever seen."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    seen_md5: set[str] = field(default_factory=set)

    def to_json(self) -> str:
        """Serializes the state (a sensor cursor)."""
        return json.dumps({"files": self.files, "seen": sorted(self.seen_md5)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LandingState:
        """Restores a state from `to_json` output; an empty or missing cursor gives an empty state."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            files={k: (int(v[0]), int(v[1]), str(v[2])) for k, v in data.get("files", {}).items()},
            seen_md5=set(data.get("seen", [])),
        )


def file_md5(path: Path) -> str:
    """Returns the md5 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_landing(landing_dir: Path) -> list[FileStat]:
    """Lists batch files (CSV or Parquet, not hidden) with one `stat` each, sorted by name."""
    if not landing_dir.is_dir():
        return []
    stats = []
    with os.scandir(landing_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file() or not entry.name.lower().endswith(LANDING_SUFFIXES):
                continue
            info = entry.stat()
            stats.append(FileStat(entry.name, info.st_size, info.st_mtime_ns))
    return sorted(stats, key=lambda s: s.name)


def scan(
    listing: Iterable[FileStat], state: LandingState, *, hash_file: Callable[[str], str]
) -> tuple[list[NewBatch], LandingState]:
    """Finds the batches with never-seen content.

    Args:
        listing: The current files.
        state: The state after the previous scan (not modified).
        hash_file: Returns the md5 of a file by name; called only for new or changed files.

    Returns:
        The new batches in name order, and the next state.
    """
    files = dict(state.files)
    seen = set(state.seen_md5)
    new: list[NewBatch] = []
    for stat in listing:
        known = files.get(stat.name)
        if known is not None and known[:2] == (stat.size, stat.mtime_ns):
            continue
        md5 = hash_file(stat.name)
        files[stat.name] = (stat.size, stat.mtime_ns, md5)
        if md5 not in seen:
            seen.add(md5)
            new.append(NewBatch(stat.name, md5))
    return new, LandingState(files=files, seen_md5=seen)
