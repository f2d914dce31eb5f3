"""Dagster wiring, one module per lifecycle stage; `build_definitions` assembles them."""

import dagster as dg


def build_definitions() -> dg.Definitions:
    """Collects the assets, checks, jobs and resources of every stage."""
    from ml_assets.defs import evaluation, features, ingestion, jobs, registry, training
    from ml_assets.defs.resources import MlflowResource, ProjectResource

    modules = [ingestion, features, training, evaluation, registry]
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=[jobs.ingest_batch_job, jobs.training_job],
        resources={"project": ProjectResource(), "mlflow": MlflowResource()},
    )
