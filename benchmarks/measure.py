"""Timing, memory and table helpers for the benchmarks: nothing here knows about the project."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ru_maxrss is KiB on Linux and bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass
class Figure:
    """One line of the table: timed samples (seconds), or a single value with its unit."""

    name: str
    samples: list[float] = field(default_factory=list)
    value: str | None = None
    note: str = ""


@dataclass
class Section:
    """A numbered group of figures, with the process's peak RSS once the group finished."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    peak_rss: int | None = None
    error: str | None = None


def time_calls(fn: Callable[[], Any], *, repeat: int, warmup: int = 0) -> tuple[list[float], Any]:
    """Calls `fn` `warmup` times untimed, then `repeat` times timed with `time.perf_counter`.

    Returns:
        The timed durations in seconds and the last call's result.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return samples, result


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes Python allocated during one call of `fn` (tracemalloc; the call runs slower, untimed)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_rss_self() -> int:
    """Peak resident set size of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


# A child's ru_maxrss (wait4, RUSAGE_CHILDREN) on Linux starts from the parent's peak: exec keeps the
# high-water mark of the forked address space. VmHWM is the peak of the exec'ed program's own memory.
_CHILD_PEAK = """
import resource, sys
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(f"BENCH_PEAK_RSS={peak}")
"""


def run_python_child(code: str, *, env: Mapping[str, str], cwd: Path) -> tuple[float, int]:
    """Runs `python -c code` in a fresh interpreter; returns its wall time (s) and its own peak RSS (bytes).

    The wall time covers interpreter start-up, `code` and a few microseconds that read the peak.

    Raises:
        RuntimeError: The child failed (its stderr is in the message).
    """
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_CHILD_PEAK}"], env=dict(env), cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`python -c {code!r}` exited {done.returncode}: {done.stderr[-2000:]}")
    peak = next(int(line.split("=", 1)[1]) for line in done.stdout.splitlines() if line.startswith("BENCH_PEAK_RSS="))
    return elapsed, peak


def fmt_seconds(seconds: float) -> str:
    """A duration with a readable unit: µs, ms or s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: int) -> str:
    """A size in B, KiB or MiB."""
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.0f} MiB"


def render(sections: Sequence[Section]) -> str:
    """The table: one row per figure with n, median, min and max, grouped by section."""
    rows: list[tuple[str, ...]] = [("figure", "n", "median", "min", "max", "notes")]
    for number, section in enumerate(sections, start=1):
        peak = f"  [process peak RSS so far {fmt_bytes(section.peak_rss)}]" if section.peak_rss else ""
        rows.append((f"{number}. {section.title}{peak}",))
        if section.error:
            rows.append(("   ERROR", "", "", "", "", section.error))
        for f in section.figures:
            if f.samples:
                rows.append(
                    (
                        f"   {f.name}",
                        str(len(f.samples)),
                        fmt_seconds(statistics.median(f.samples)),
                        fmt_seconds(min(f.samples)),
                        fmt_seconds(max(f.samples)),
                        f.note,
                    )
                )
            else:
                rows.append((f"   {f.name}", "", f.value or "", "", "", f.note))
    full = [r for r in rows if len(r) > 1]
    widths = [max(len(r[i]) for r in full) for i in range(5)]
    lines = []
    for r in rows:
        if len(r) == 1:
            lines.append(r[0])
            continue
        name, n, med, lo, hi, note = r
        lines.append(
            f"{name:<{widths[0]}}  {n:>{widths[1]}}  {med:>{widths[2]}}  {lo:>{widths[3]}}  {hi:>{widths[4]}}  {note}"
        )
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([lines[0], rule, *lines[1:], rule])
