"""Automation: sensors and a schedule that retrain when they should, and only then.

- `landing_sensor`: a new file (new *content*, by md5) in the landing folder -> validate it.
- `retrain_sensor`: after batches settle, weigh drift, live performance and new rows -> train.
- `weekly_retrain`: the cron in params.yaml -> train if the validated data changed.
- `alert_on_run_failure`: any failed run (a failed blocking check fails its run) -> alert.
- `per_batch_automation`: declarative automation for the per-batch assets, so a batch whose
  `landed_batch` a person materializes in the UI is kept, monitored and scored once its blocking
  checks pass (`AutomationCondition.eager() & all_deps_blocking_checks_passed()`).

Every run carries the `ml_assets/trigger` tag saying why it started. This module imports nothing
heavy: a tick stats the landing folder, hashes only new files, and reads only new events.
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ml_assets.defs.graph import GRAPH
from ml_assets.defs.ingestion import LANDING_PARTITIONS, landing_batches
from ml_assets.defs.jobs import TRIGGER_TAG, ingest_batch_job, training_job
from ml_assets.defs.resources import AlertResource, ProjectResource
from ml_assets.lib.alerts import Alert
from ml_assets.lib.drift import DriftReport
from ml_assets.lib.landing import LandingState, file_md5, list_landing, scan
from ml_assets.lib.retrain import PerformanceCheck, decide_retrain, decide_scheduled_retrain
from ml_assets.lib.snapshot import validated_fingerprint


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=GRAPH.automation.landing_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    """Registers each landed file with never-seen content as a batch partition and validates it.

    Run keys are the content md5, so the same bytes never start a second run, whatever the file
    is called and even if the cursor is lost.
    """
    landing = project.path(project.params().data.landing_dir)
    new, state = scan(
        list_landing(landing), LandingState.from_json(context.cursor), hash_file=lambda name: file_md5(landing / name)
    )
    known = set(context.instance.get_dynamic_partitions(LANDING_PARTITIONS))
    to_add = [batch.name for batch in new if batch.name not in known]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"batch:{batch.md5}",
                partition_key=batch.name,
                tags={TRIGGER_TAG: "new_data", "ml_assets/batch_md5": batch.md5},
            )
            for batch in new
        ],
        dynamic_partitions_requests=[landing_batches.build_add_request(to_add)] if to_add else [],
        cursor=state.to_json(),
    )


@dataclass
class RetrainCursor:
    """What the retrain sensor has read and what is pending since the last retrain it requested."""

    after_storage_id: int = 0
    rows_pending: int = 0
    drift: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    last_drift_retrain_at: str | None = None
    batches_pending: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str | None) -> "RetrainCursor":
        """Reads a cursor; empty gives the initial state."""
        return cls(**json.loads(text)) if text else cls()

    def to_json(self) -> str:
        """Writes the cursor."""
        return json.dumps(asdict(self), separators=(",", ":"))


def _new_materializations(instance: dg.DagsterInstance, asset: str, after: int) -> list[dg.EventLogRecord]:
    return list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after), limit=1000, ascending=True
        ).records
    )


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}


@dg.sensor(
    job=training_job,
    minimum_interval_seconds=GRAPH.automation.retrain_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retrain_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    """Starts a training run when the retrain policy says so (`ml_assets/lib/retrain.py`).

    It reads only events newer than its cursor: validated batches (rows), drift reports and live
    performance. It waits while batches are still being validated or a training run is in flight,
    so one landing of many files gives one retrain.
    """
    params = project.params()
    instance = context.instance
    cursor = RetrainCursor.from_json(context.cursor)
    events = sorted(
        (record.storage_id, asset, record)
        for asset in ("training_snapshot", "validated_batch", "batch_drift", "live_performance")
        for record in _new_materializations(instance, asset, cursor.after_storage_id)
    )
    for storage_id, asset, record in events:  # in the order they happened
        metadata = _metadata(record)
        if asset == "training_snapshot":  # any training run (also a manual one) consumes what is pending
            cursor.rows_pending, cursor.batches_pending, cursor.performance = 0, [], None
            if not (cursor.drift or {}).get("drifted"):
                cursor.drift = None
        elif asset == "validated_batch":
            cursor.rows_pending += int(metadata.get("dagster/row_count", 0))
            cursor.batches_pending.append(record.partition_key or "")
        elif asset == "batch_drift" and isinstance(metadata.get("report"), dict):
            if metadata["report"].get("drifted") or not (cursor.drift or {}).get("drifted"):
                cursor.drift = metadata["report"]  # a drift signal stays until a retrain handles it
        elif asset == "live_performance" and metadata.get("degraded"):
            cursor.performance = metadata
        cursor.after_storage_id = max(cursor.after_storage_id, storage_id)

    in_flight = instance.get_run_records(
        dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=50,
    )
    busy = {r.dagster_run.job_name for r in in_flight} & {ingest_batch_job.name, training_job.name}
    if busy:
        # A training run in flight picks up every batch validated before its snapshot step; what
        # it misses stays pending for the next decision.
        return dg.SensorResult(skip_reason=f"waiting for {', '.join(sorted(busy))} to finish", cursor=cursor.to_json())

    now = datetime.now(UTC)
    performance = cursor.performance
    decision = decide_retrain(
        validated_rows_since_champion=cursor.rows_pending,
        min_new_rows=params.retrain.min_new_rows,
        drift=DriftReport.from_dict(cursor.drift) if cursor.drift else None,
        last_drift_retrain_at=datetime.fromisoformat(cursor.last_drift_retrain_at)
        if cursor.last_drift_retrain_at
        else None,
        drift_cooldown=timedelta(hours=params.drift.cooldown_hours),
        now=now,
        performance=PerformanceCheck(
            metric=performance["metric"],
            champion_score=performance["champion_score"],
            threshold=params.retrain.min_live_score,
            previous_score=performance.get("previous_score"),
            degraded=True,
            rollback=bool(performance.get("rolled_back_to")),
            detail=performance["detail"],
        )
        if performance
        else None,
        champion_exists=instance.get_latest_materialization_event(dg.AssetKey("champion_model")) is not None,
    )
    if not decision.retrain:
        return dg.SensorResult(skip_reason=decision.detail, cursor=cursor.to_json())
    context.log.info(f"retrain ({decision.reason}): {decision.detail}")
    request = dg.RunRequest(
        run_key=f"retrain:{cursor.after_storage_id}",
        tags={TRIGGER_TAG: str(decision.reason), "ml_assets/trigger_detail": decision.detail[:400]},
    )
    cursor.rows_pending, cursor.batches_pending, cursor.performance = 0, [], None  # the run takes them all
    if decision.reason == "drift":
        cursor.drift, cursor.last_drift_retrain_at = None, now.isoformat()
    return dg.SensorResult(run_requests=[request], cursor=cursor.to_json())


@dg.schedule(
    job=training_job,
    cron_schedule=GRAPH.retrain.schedule,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext, project: ProjectResource) -> dg.RunRequest | dg.SkipReason:
    """Retrains on the cron in params.yaml (`retrain.schedule`) if the validated data changed since the snapshot."""
    now = validated_fingerprint(project.path(project.params().data.validated_dir))
    last = context.instance.get_latest_materialization_event(dg.AssetKey("training_snapshot"))
    recorded = None
    if last is not None and last.asset_materialization is not None:
        value = last.asset_materialization.metadata.get("validated_fingerprint")
        recorded = str(value.value) if value is not None else None
    decision = decide_scheduled_retrain(snapshot_version_now=now, snapshot_version_of_champion=recorded)
    if not decision.retrain:
        return dg.SkipReason(decision.detail)
    return dg.RunRequest(
        run_key=f"schedule:{now}",
        tags={TRIGGER_TAG: "schedule", "ml_assets/trigger_detail": decision.detail[:400]},
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    """Alerts on every failed run, naming the failed steps and any failed blocking check."""
    run = context.dagster_run
    failed_checks = [
        f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or 'failed'}"
        for e in _check_evaluations(context.instance, run.run_id)
        if not e.passed
    ]
    partition = run.tags.get("dagster/partition")
    detail = "; ".join(failed_checks) if failed_checks else (context.failure_event.message or "see the run's log")
    alerts.send(
        context,
        Alert(
            title=f"run `{run.job_name}`"
            + (f" for `{partition}`" if partition else "")
            + f" ({run.run_id[:8]}) failed",
            detail=detail,
            context={"run_id": run.run_id, "trigger": run.tags.get(TRIGGER_TAG, "manual")},
        ),
    )


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [
        r.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        for r in records
        if r.event_log_entry.dagster_event is not None
    ]


per_batch_automation = dg.AutomationConditionSensorDefinition(
    "per_batch_automation",
    target=dg.AssetSelection.assets("validated_batch", "batch_drift", "live_performance", "predictions"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=GRAPH.automation.landing_interval_seconds,
    description="Keeps, monitors and scores a batch whose landed_batch was materialized outside ingest_batch_job.",
)
