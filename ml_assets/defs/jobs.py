"""Jobs: validate one landed batch, and train-evaluate-register-promote from the snapshot."""

import dagster as dg

from ml_assets.defs.ingestion import landing_batches

ingest_batch_job = dg.define_asset_job(
    "ingest_batch_job",
    selection=dg.AssetSelection.groups("ingestion") - dg.AssetSelection.assets("training_snapshot"),
    partitions_def=landing_batches,
    description="Read one landed batch, run its Great Expectations checks, and keep it if they pass.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("training_snapshot").downstream(),
    description="Snapshot -> features -> candidates -> evaluation -> gates -> registry -> champion.",
)
