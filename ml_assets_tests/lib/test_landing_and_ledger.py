"""Landing you can trust: complete files only, any name, content hashes, no file skipped; and the row ledger."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.lib import ledger as LG
from ml_assets.lib import snapshot as S
from ml_assets.lib.landing import LandingState, incomplete_reason, list_landing, partition_key, scan

ROWS = "id,x,y\n1,2.5,0\n2,3.5,1\n"


def write(folder: Path, name: str, text: str = ROWS) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "kept"),
    [("batch_2026-11-01.csv", True), ("a.b.c.parquet", True), ("my batch.csv", False), ("données é.csv", False)],
)
def test_partition_keys_are_safe_and_stable(name: str, kept: bool):
    key = partition_key(name)
    assert (key == name) is kept
    assert key == partition_key(name) and len(key) <= 100
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in key)


def test_long_names_map_to_distinct_short_keys():
    a, b = "x" * 240 + "a.csv", "x" * 240 + "b.csv"
    assert partition_key(a) != partition_key(b) and max(len(partition_key(a)), len(partition_key(b))) <= 100


def test_a_cut_csv_a_partial_parquet_and_a_young_file_are_not_complete(tmp_path: Path):
    now = time.time_ns()

    def reason(path: Path, settle: float = 0) -> str | None:
        stat = path.stat()
        return incomplete_reason(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, now_ns=now, settle_seconds=settle)

    whole = write(tmp_path, "whole.csv")
    assert reason(whole) is None
    assert "left alone for 60 s" in reason(whole, settle=60)
    assert "cut while being written" in reason(write(tmp_path, "cut.csv", ROWS + "3,4."))
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "full.parquet")
    assert reason(tmp_path / "full.parquet") is None
    (tmp_path / "half.parquet").write_bytes((tmp_path / "full.parquet").read_bytes()[:200])
    assert "not a whole Parquet file" in reason(tmp_path / "half.parquet")
    assert "empty" in reason(write(tmp_path, "empty.csv", ""))


def test_hidden_and_foreign_files_are_listed_as_ignored_with_a_reason(tmp_path: Path):
    write(tmp_path, ".leading-dot.csv")
    write(tmp_path, "notes.txt")
    write(tmp_path, "ok.csv")
    listing = list_landing(tmp_path)
    assert [f.name for f in listing.files] == ["ok.csv"]
    assert (
        "upload in progress" in listing.ignored[".leading-dot.csv"]
        and "not a batch file" in listing.ignored["notes.txt"]
    )


def test_scan_takes_complete_new_content_once_and_never_skips_a_file(tmp_path: Path):
    for i in range(5):
        write(tmp_path, f"b{i}.csv", ROWS + f"{i + 3},1.0,0\n")
    write(tmp_path, "cut.csv", ROWS + "9,")
    state, taken = LandingState(), []
    for _ in range(4):  # at most two per scan: the rest wait, none is lost
        found = scan(
            list_landing(tmp_path), state, landing_dir=tmp_path, now_ns=time.time_ns(), settle_seconds=0, limit=2
        )
        taken += [b.name for b in found.new]
        state = found.state
        assert "cut.csv" in found.waiting
    assert taken == [f"b{i}.csv" for i in range(5)]
    write(tmp_path, "copy.csv", ROWS + "3,1.0,0\n")  # the bytes of b0 under another name: not new
    write(tmp_path, "b1.csv", ROWS + "99,1.0,1\n")  # new bytes under a known name: a new version
    write(tmp_path, "cut.csv", ROWS + "9,1.0,1\n")  # finished writing
    found = scan(list_landing(tmp_path), state, landing_dir=tmp_path, now_ns=time.time_ns(), settle_seconds=0, limit=9)
    assert sorted(b.name for b in found.new) == ["b1.csv", "cut.csv"]


def test_relanding_supersedes_the_old_validated_copy(tmp_path: Path):
    folder = tmp_path / "validated"
    S.write_validated(pd.DataFrame({"a": [1, 2]}), S.validated_batch_path(folder, "b"), source_md5="old")
    assert S.validated_source_md5(folder / "b.parquet") == "old"
    assert S.supersede(folder, "b", landed_md5="old") is None  # the same version stays
    moved = S.supersede(folder, "b", landed_md5="new")
    assert moved == folder / "superseded" / "b.old.parquet" and moved.is_file()
    assert not (folder / "b.parquet").exists()


def test_ledger_balances_and_names_the_rows_it_cannot_account_for():
    snapshot = S.union_batches({"a": pd.DataFrame({"x": [1, 2, 3]}), "b": pd.DataFrame({"x": [3, 4]})})
    snapshot = S.Snapshot(snapshot.frame, snapshot.validated_rows, snapshot.duplicates_dropped, {"a": "m1", "b": "m2"})
    entries = [
        LG.BatchEntry("a", "m1", 3, "validated"),
        LG.BatchEntry("b", "m2", 2, "validated"),
        LG.BatchEntry("c", "m3", 7, "quarantined", "failed checks: null_limits"),
        LG.BatchEntry("d", "m4", 5, "pending"),
    ]
    report = LG.reconcile(entries, snapshot)
    assert report.balanced and report.totals == {
        "landed": 17,
        "validated": 5,
        "quarantined": 7,
        "pending": 5,
        "in_snapshot": 4,
        "duplicates": 1,
        "unlabelled": 0,
    }
    assert "17 landed rows = 5 validated + 7 quarantined + 5 pending" in report.summary()
    assert "`d` (5 rows)" in report.summary()

    stale = LG.reconcile(
        [LG.BatchEntry("a", "m9", 3, "validated"), LG.BatchEntry("b", "m2", 2, "quarantined")], snapshot
    )
    assert not stale.balanced
    assert any("another version" in p for p in stale.problems) and any(
        "`b` is quarantined" in p for p in stale.problems
    )
