"""Jobs: validate and monitor one landed batch; train-evaluate-register-promote from the snapshot."""

import dagster as dg

from ml_assets.defs.ingestion import landing_batches

TRIGGER_TAG = "ml_assets/trigger"

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
    # One process for the whole run, chosen by measurement (make bench, daemon section): a process per
    # step (the forkserver multiprocess executor) paid start-up, imports and an unpickled copy of the
    # split for each of ~15 steps, far more than running the three candidate searches side by side
    # saved on two cores. The search fits a rung's configurations in parallel itself
    # (`training.search.n_jobs`), and in one process each step takes its inputs from memory.
    executor_def=dg.in_process_executor,
    description="Snapshot -> features -> candidates -> evaluation -> gates -> registry -> champion.",
)
