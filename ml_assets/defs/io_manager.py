"""The IO manager: Dagster's pickle files, with the objects of the current run kept in memory.

Every output is pickled under `$DAGSTER_HOME/storage/<asset key>[/<partition>]`, exactly where
and how Dagster's default filesystem IO manager puts it, so a later run (or a step in another
process) loads it from there. A step that runs in the same process as the step that wrote its
input (`make run`, the tests, the in-process ingest job) gets the written object itself instead
of unpickling it again: the training split is read by nine steps, and at a million rows each
unpickle took seconds and made another copy of the frame. An object is served from memory only
while its file is the one this process wrote (same size and modification time); the memory of
one run's objects is released when the next run writes its first output.

Dagster's `mem_io_manager` keeps objects in memory too, but writes nothing, so a run that
materializes only part of the graph could not load what an earlier run produced.
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import dagster as dg
from upath import UPath

_LOCK = threading.Lock()
_CACHE: dict[str, tuple[tuple[int, int], str, Any]] = {}
"""Path -> ((size, mtime_ns) of the file written, run id, the object)."""


def _signature(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class RunCachedPickleIOManager(dg.UPathIOManager):
    """Pickles each output to the instance's storage folder and serves it from memory within a process."""

    extension: str = ""

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        """Writes the pickle (atomically) and keeps the object for steps of the same run in this process."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(str(tmp), str(path))
        key = str(path)
        signature = _signature(key)
        with _LOCK:
            for stale in [k for k, (_, run_id, _) in _CACHE.items() if run_id != context.run_id]:
                del _CACHE[stale]  # another run's objects: let them go
            if signature is not None:
                _CACHE[key] = (signature, context.run_id, obj)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        """The object this process wrote to `path`, if the file is still that one; else the unpickled file."""
        key = str(path)
        with _LOCK:
            cached = _CACHE.get(key)
        if cached is not None and cached[0] == _signature(key):
            return cached[2]
        with path.open("rb") as handle:
            return pickle.load(handle)


class RunCachedIOManager(dg.ConfigurableIOManagerFactory):
    """The project's IO manager (see the module docstring); `base_dir` defaults to the instance's storage folder."""

    base_dir: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> RunCachedPickleIOManager:
        """Builds the IO manager rooted at `base_dir` or `$DAGSTER_HOME/storage`."""
        base = self.base_dir or (context.instance.storage_directory() if context.instance else "storage")
        return RunCachedPickleIOManager(base_path=UPath(base))
