"""The graph's shape, read once when the code location loads.

Which candidates exist, how often sensors tick and the retrain cron come from `params.yaml` under
`ML_ASSETS_ROOT` (the repository root by default). Everything else is read at run time, so an
edit to a threshold applies to the next run; an edit to the shape needs a reload of the location.
"""

import os
from pathlib import Path

import dagster as dg

from ml_assets.lib.config import Params, load_params, stable_hash

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

OWNERS = ["team:ml-platform"]
"""Who answers for every asset (shown in the UI)."""

WRITER_POOL = "champion_writer"
"""The concurrency pool of every step that moves `champion` (limit 1 in dagster.yaml): one writer."""
TRAINING_POOL = "training_run"
"""The pool of the training assets; with run granularity, one training run at a time however launched."""

RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)
"""For steps that talk to MLflow or the DVC remote: 2 s, 4 s, 8 s."""

EAGER_ON_UPDATES = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("eager_on_updates")
"""`AutomationCondition.eager()` without its `newly_missing` clause, for assets that may produce nothing.

A per-batch asset with `output_required=False` (no champion yet) stays missing after the batch's own
run; `eager()` would read that as new work and request a second, empty run for every batch. Its
parents' updates still request it (a `landed_batch` materialized by hand in the UI).
"""


def graph_params() -> Params:
    """Loads the params that shape the graph."""
    root = os.environ.get("ML_ASSETS_ROOT")
    candidate = Path(root) / "params.yaml" if root else REPO_PARAMS
    return load_params(candidate if candidate.is_file() else REPO_PARAMS)


GRAPH = graph_params()


def code_version(base: str, *params: str, upstream: tuple[str, ...] = ()) -> str:
    """An asset's code version: its code's `base`, the params it reads, and its parents' versions.

    Editing one of those params in `params.yaml` (and reloading the code location) changes the
    code version of the asset and of everything downstream of it, so Dagster marks exactly those
    assets stale; the others stay fresh.

    Args:
        base: The version of the asset's code (bump it when the code changes results).
        *params: Dotted paths into `params.yaml`, e.g. `split` or `data.target`.
        upstream: The code versions of the asset's parents.

    Returns:
        For example `1-3f2a9c01b7de`, or just `base` when nothing else is given.
    """
    values: dict[str, object] = {}
    for path in params:
        node: object = GRAPH.raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[path] = node
    if not values and not upstream:
        return base
    return f"{base}-{stable_hash({'params': values, 'upstream': sorted(upstream)})}"


TRAINING_CODE_VERSION = "2"
"""Bump when a change to lib/training.py or lib/features.py changes the weights a run produces.

2: candidates are a successive-halving search per family (`training.search`).
"""


def _graph_code_versions() -> dict[str, str]:
    versions = {"dataset_split": code_version("1", "split", "data.target", "data.id_columns", "data.feature_types")}
    versions["feature_pipeline"] = code_version("1", upstream=(versions["dataset_split"],))
    for spec in GRAPH.training.candidates:
        versions[f"candidate_{spec.name}"] = code_version(
            TRAINING_CODE_VERSION,
            f"training.candidates.{spec.name}",
            "training.search",
            "training.selection_metric",  # it ranks the configurations inside a family's search
            upstream=(versions["feature_pipeline"],),
        )
    candidates = tuple(versions[f"candidate_{spec.name}"] for spec in GRAPH.training.candidates)
    versions["trained_model"] = code_version(TRAINING_CODE_VERSION, "training.selection_metric", upstream=candidates)
    versions["model_evaluation"] = code_version(
        "2",  # 2: slices and permutation importances
        "gates.bootstrap_samples",
        "gates.confidence",
        "gates.latency_samples",
        "evaluation",
        upstream=(versions["trained_model"],),
    )
    versions["registered_model"] = code_version(  # 2: model card and explanations as run artifacts
        "2", "registry", upstream=(versions["model_evaluation"],)
    )
    versions["champion_model"] = code_version("1", upstream=(versions["registered_model"],))
    return versions


CODE_VERSIONS = _graph_code_versions()
"""Code versions of the training side of the graph, parents first (see `code_version`)."""
