"""Dagster wiring, one module per lifecycle stage; `build_definitions` assembles them."""

import os

import dagster as dg


def build_definitions() -> dg.Definitions:
    """Collects the assets, checks, jobs, sensors, schedules and resources of every stage."""
    from ml_assets.defs import (
        evaluation,
        features,
        inference,
        ingestion,
        jobs,
        monitoring,
        operations,
        registry,
        rollout,
        sensors,
        training,
    )
    from ml_assets.defs.io_manager import RunCachedIOManager
    from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource

    modules = [ingestion, features, training, evaluation, registry, monitoring, inference, rollout]
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules, include_specs=True),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=[jobs.ingest_batch_job, jobs.training_job, monitoring.live_rollback_job, *operations.OPERATION_JOBS],
        sensors=[
            sensors.landing_sensor,
            sensors.retrain_sensor,
            sensors.alert_on_run_failure,
            sensors.close_mlflow_runs,
            sensors.per_batch_automation,
            sensors.tag_run_trigger,
            sensors.canary_rollback,
        ],
        schedules=[sensors.weekly_retrain],
        resources={
            "project": ProjectResource(),
            "mlflow": MlflowResource(),
            "alerts": AlertResource(),
            # Pickle files like Dagster's default, but a step in the process that wrote its input
            # takes the object itself instead of unpickling a copy (see io_manager.py).
            "io_manager": RunCachedIOManager(),
        },
        # Multiprocess by default, Celery workers when ML_ASSETS_EXECUTOR=celery (see jobs.py).
        executor=jobs.executor_for(os.environ),
    )
