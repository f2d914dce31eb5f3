"""Runs a module as `python -m` would, then writes the process's own peak RSS (VmHWM) to a file.

    BENCH_PEAK_FILE=/tmp/x python -m benchmarks.peak ml_assets.cli run

A child's `ru_maxrss` on Linux starts from its parent's peak (exec keeps the high-water mark of the
forked address space); VmHWM is the peak of the program's own memory only.
"""

from __future__ import annotations

import os
import runpy
import sys

from benchmarks.bare import own_peak_rss


def main() -> None:
    """Runs `sys.argv[1]` as `__main__` with the remaining arguments; records the peak even on exit."""
    module, sys.argv = sys.argv[1], sys.argv[1:]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        out = os.environ.get("BENCH_PEAK_FILE")
        if out:
            with open(out, "w") as handle:
                handle.write(str(own_peak_rss()))


if __name__ == "__main__":
    main()
