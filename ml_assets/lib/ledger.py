"""The row ledger: every landed row is validated, quarantined or pending, and every validated row is in the snapshot.

Dagster's event log is the book of record (which version of each batch landed, with how many
rows, and what its checks said); the snapshot's own books say what it holds. `reconcile` lines
them up per batch and names every row that is not accounted for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ml_assets.lib.snapshot import Snapshot

Status = Literal["validated", "quarantined", "pending"]


@dataclass(frozen=True)
class BatchEntry:
    """The latest landed version of one batch and what became of it.

    Attributes:
        batch: The partition key.
        landed_md5: The md5 of the version that landed last.
        landed_rows: Its rows.
        status: `validated` (every check passed and the copy is kept), `quarantined` (a blocking check
            failed), or `pending` (its validation has not finished: it is validated again).
        detail: The failed checks, or what is pending.
    """

    batch: str
    landed_md5: str
    landed_rows: int
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class LedgerReport:
    """Per-batch and total rows, and the problems found."""

    rows: list[dict[str, object]]
    totals: dict[str, int]
    problems: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when every landed row is accounted for and the snapshot holds exactly the validated rows."""
        return not self.problems

    def summary(self) -> str:
        """One sentence for the check's description."""
        t = self.totals
        head = (
            f"{t['landed']} landed rows = {t['validated']} validated + {t['quarantined']} quarantined + "
            f"{t['pending']} pending; snapshot {t['in_snapshot']} rows + {t['duplicates']} exact duplicates "
            f"+ {t['unlabelled']} unlabelled (scored, not trained on) = {t['validated']} validated rows"
        )
        if self.problems:
            return f"{head}. NOT BALANCED: " + "; ".join(self.problems)
        if self.pending:
            return f"{head}. Still being validated (not in this snapshot): " + ", ".join(self.pending)
        return head


def reconcile(entries: Sequence[BatchEntry], snapshot: Snapshot) -> LedgerReport:
    """Lines up the event log's batches with the snapshot's books.

    Args:
        entries: One entry per landed batch (latest version).
        snapshot: The snapshot just built.

    Returns:
        The report; `problems` names each batch whose rows are unaccounted for.
    """
    problems: list[str] = []
    pending: list[str] = []
    rows: list[dict[str, object]] = []
    totals = dict.fromkeys(
        ("landed", "validated", "quarantined", "pending", "in_snapshot", "duplicates", "unlabelled"), 0
    )
    known = {e.batch for e in entries}
    for entry in sorted(entries, key=lambda e: e.batch):
        labelled = snapshot.validated_rows.get(entry.batch)
        waiting = snapshot.unlabelled.get(entry.batch, 0)  # scoring rows: validated, never trained on
        kept = None if labelled is None and not waiting else (labelled or 0) + waiting
        dropped = snapshot.duplicates_dropped.get(entry.batch, 0)
        totals["unlabelled"] += waiting
        if entry.status == "validated":
            if kept is None:
                problems.append(f"`{entry.batch}` passed its checks but is missing from the snapshot")
            elif snapshot.source_md5.get(entry.batch) != entry.landed_md5:
                problems.append(f"`{entry.batch}`: the snapshot holds another version than the one that landed last")
            elif kept != entry.landed_rows:
                problems.append(f"`{entry.batch}`: {entry.landed_rows} rows landed but {kept} were kept")
        elif kept is not None:
            problems.append(f"`{entry.batch}` is {entry.status} but its rows are in the snapshot")
        if entry.status == "pending":
            pending.append(f"`{entry.batch}` ({entry.landed_rows} rows)")
        totals["landed"] += entry.landed_rows
        totals[entry.status] += entry.landed_rows
        totals["in_snapshot"] += (labelled or 0) - dropped
        totals["duplicates"] += dropped
        rows.append(
            {
                "batch": entry.batch,
                "status": entry.status,
                "landed": entry.landed_rows,
                "in_snapshot": (labelled or 0) - dropped,
                "unlabelled": waiting,
                "duplicates": dropped,
                "detail": entry.detail[:200],
            }
        )
    for stray in sorted((set(snapshot.validated_rows) | set(snapshot.unlabelled)) - known):
        problems.append(f"`{stray}` is in the snapshot but never landed (a copy placed by hand?)")
    return LedgerReport(rows=rows, totals=totals, problems=problems, pending=pending)
