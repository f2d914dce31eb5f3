"""Lineage: the git commit of the code and the fingerprint that identifies one training setup.

A fingerprint hashes everything that decides a model's weights: the DVC md5 of the data, the
params that matter and the code version. The same fingerprint means the same model, so the graph
reuses the earlier MLflow run instead of training again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_assets.lib.config import stable_hash


def git_commit(root: Path) -> str:
    """Returns the commit checked out under `root` (with `-dirty` when files differ), or `unknown`."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "ml_assets", "params.yaml"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def training_fingerprint(
    *,
    snapshot_md5: str,
    params: Mapping[str, Any],
    code_version: str,
) -> str:
    """Identifies one training setup.

    Args:
        snapshot_md5: The DVC md5 of the training snapshot.
        params: The params that decide the model (split, target, candidate spec, ...).
        code_version: The training code's version.

    Returns:
        A 12-digit hex fingerprint.
    """
    return stable_hash({"data": snapshot_md5, "params": params, "code": code_version})
