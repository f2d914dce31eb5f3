"""Jobs: validate and monitor one landed batch; train-evaluate-register-promote from the snapshot.

Which executor runs the training steps is a deployment choice, not a code change: `executor_for`
reads `ML_ASSETS_EXECUTOR` once, when the definitions are built (the same pattern as Dagster's
per-deployment resources), and `build_definitions` makes it the default executor of the code
location. The training job and every materialization launched from the UI use it; the per-batch
job always runs in one process.

| `ML_ASSETS_EXECUTOR`   | steps run in                                                  | profile          |
|------------------------|---------------------------------------------------------------|------------------|
| `in_process` (unset)   | the run's own process                                         | `make dev`       |
| `multiprocess`         | processes forked from a forkserver on the run's machine       |                  |
| `celery`               | Celery workers (`dagster-celery worker start`), any machine   | `make dev-scale` |
| `k8s`                  | one Kubernetes pod per step (`dagster-k8s`, the `k8s` extra)  | deploy/k8s       |

One process is the default by measurement (make bench, daemon section): on two cores a process per
step paid start-up, imports and an unpickled copy of the split for each of ~15 steps, more than
running the candidate searches side by side saved; the search parallelises each rung itself
(`training.search.n_jobs`). More machines change that, hence the other executors.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ml_assets.defs.ingestion import landing_batches

TRIGGER_TAG = "ml_assets/trigger"
EXECUTOR_ENV = "ML_ASSETS_EXECUTOR"

PRELOAD_MODULES = ["ml_assets.definitions", "mlflow.sklearn", "sklearn.ensemble"]
"""Imported once by the forkserver or each Celery worker, so a step starts in milliseconds, not seconds."""

MULTIPROCESS_EXECUTOR = dg.multiprocess_executor.configured(
    {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}}},
    name="multiprocess_forkserver",
)
"""Candidates train in parallel processes forked from a server that imported the code once."""

CELERY_CONFIG: dict[str, Any] = {
    # Endpoints come from the environment of the run (and of each worker), never from git.
    "broker": {"env": "CELERY_BROKER_URL"},
    "backend": {"env": "CELERY_RESULT_BACKEND"},
    "include": PRELOAD_MODULES,
    "config_source": {
        # A step whose worker process dies mid-step is not lost: its message is acknowledged only
        # after the step ends, so the broker hands it to another worker, which runs it again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A worker machine that vanishes returns its unacknowledged step after this many seconds;
        # keep it above the longest step.
        "broker_transport_options": {"visibility_timeout": 3600},
    },
}
"""The `celery_executor` config; the workers read the same settings from `deploy/scale/celery.yaml`."""


def executor_for(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """The step executor named by `ML_ASSETS_EXECUTOR` in `env` (`in_process` when unset).

    Args:
        env: The environment of the process building the definitions (pass `os.environ`).

    Returns:
        The executor definition, already configured.

    Raises:
        ValueError: The variable names no known executor.
    """
    name = env.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return MULTIPROCESS_EXECUTOR
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(CELERY_CONFIG, name="celery")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]  # the `k8s` extra

        return k8s_job_executor.configured({"max_concurrent": 4}, name="k8s")
    known = "`in_process` (the default), `multiprocess`, `celery` or `k8s`"
    raise ValueError(f"{EXECUTOR_ENV}=`{name}` names no executor; use {known}")


ingest_batch_job = dg.define_asset_job(
    "ingest_batch_job",
    selection=dg.AssetSelection.groups("ingestion", "monitoring", "inference")
    - dg.AssetSelection.assets("training_snapshot"),
    partitions_def=landing_batches,
    tags={TRIGGER_TAG: "manual"},
    # One process for the whole batch: its steps are light, and Great Expectations is imported once.
    executor_def=dg.in_process_executor,
    description="Validate one landed batch; if it passes, keep it, measure its drift and score the champion on it.",
)

training_job = dg.define_asset_job(
    "training_job",
    # The batch scores depend on the champion too, but per batch: the automation sensor rescores them.
    selection=dg.AssetSelection.assets("training_snapshot").downstream() - dg.AssetSelection.assets("predictions"),
    # One training run at a time comes from the `training_run` pool of its assets (dagster.yaml),
    # so runs launched from the UI queue up the same way.
    tags={TRIGGER_TAG: "manual"},
    # No executor here: the code location's default (`executor_for`) runs its steps: in one process
    # unless ML_ASSETS_EXECUTOR names another.
    description="Snapshot -> features -> candidates -> evaluation -> gates -> registry -> champion.",
)
