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
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ml_assets.defs.graph import GRAPH
from ml_assets.defs.ingestion import BATCH_CHECKS, LANDING_PARTITIONS, landing_batches
from ml_assets.defs.jobs import TRIGGER_TAG, ingest_batch_job, training_job
from ml_assets.defs.ledger import read_ledger
from ml_assets.defs.monitoring import live_rollback_job
from ml_assets.defs.operations import rollback_champion
from ml_assets.defs.resources import AlertResource, MlflowResource, ProjectResource
from ml_assets.lib.alerts import Alert
from ml_assets.lib.drift import DriftReport
from ml_assets.lib.landing import LandingState, batch_version, find_landed_file, label_files, list_landing, scan
from ml_assets.lib.retrain import Degradation, decide_retrain, decide_scheduled_retrain
from ml_assets.lib.snapshot import validated_fingerprint

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
MAX_VALIDATION_ATTEMPTS = 3


def _in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=500)]


@dataclass
class LandingCursor:
    """The landing scan state, and the validation attempts of batches whose validation never finished."""

    scan: str = ""
    attempts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> "LandingCursor":
        """Reads a cursor; an old cursor (a bare scan state) is kept as the scan."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(**data) if "scan" in data else cls(scan=text)

    def to_json(self) -> str:
        """Writes the cursor."""
        return json.dumps(asdict(self), separators=(",", ":"))


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=GRAPH.automation.landing_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    """Validates each complete landed file with new content, and again any batch whose validation never finished.

    Never finished: cut mid-validation (a crash, a killed run), or its run failed before it
    started (a code server that did not answer the queue). Each is requested again up to
    three times; then the sensor says so and a person looks at the batch's runs.

    Run keys are the content md5, so the same bytes never start a second run, whatever the file is
    called and even if the cursor is lost; a batch that `make run` (or a person) already validated
    or quarantined is not taken again: the batch ledger in Dagster's event log is shared.
    """
    params = project.params()
    landing = project.path(params.data.landing_dir)
    cursor = LandingCursor.from_json(context.cursor)
    found = scan(
        list_landing(landing),
        LandingState.from_json(cursor.scan),
        landing_dir=landing,
        now_ns=time.time_ns(),
        settle_seconds=params.automation.settle_seconds,
        limit=params.automation.max_batches_per_tick,
    )
    instance = context.instance
    # Runs in flight first, then the ledger: a run that ends in between is then in the ledger, never
    # in neither (which asked for a needless second validation of a batch under load, as the soak saw).
    busy = {r.tags.get("dagster/partition") for r in _in_flight(instance)}
    ledger = {e.batch: e for e in read_ledger(instance, BATCH_CHECKS)}
    requests: list[dg.RunRequest] = []
    # The whole job, named: a run that records what it targets lets `eager()` see that a per-batch
    # asset which produced nothing (no champion yet) was already handled, so no second run follows.
    if context.repository_def is None:  # only a test's `build_sensor_context` without `definitions=`
        raise dg.DagsterInvariantViolationError("landing_sensor needs its definitions: pass `definitions=defs`")
    graph = context.repository_def.asset_graph
    targets = {
        "asset_selection": sorted(ingest_batch_job.selection.resolve(graph)),
        "asset_check_keys": sorted(ingest_batch_job.selection.resolve_checks(graph)),
    }
    for key, name in {b.key: b.name for b in found.new}.items():  # a batch and its labels: one run
        batch_file = find_landed_file(landing, key)
        if batch_file is None:
            continue
        version = batch_version(batch_file, label_files(landing, batch_file))
        done = ledger.get(key)
        if done is not None and done.landed_md5 == version and done.status != "pending":
            continue  # `make run` or a person already settled these bytes
        requests.append(
            dg.RunRequest(
                run_key=f"batch:{version}",
                partition_key=key,
                tags={TRIGGER_TAG: "new_data", "ml_assets/batch_md5": version, "ml_assets/file": name[:200]},
                **targets,
            )
        )
    known = set(instance.get_dynamic_partitions(LANDING_PARTITIONS))
    # Validate again what never finished: a validation that was cut (a crash, a killed run: the
    # ledger says pending), and a file whose run failed before `landed_batch` (the queue could not
    # launch it): the file is a known partition but the ledger has no entry for it.
    unfinished = {e.batch: e.landed_md5 for e in ledger.values() if e.status == "pending"}
    for key in sorted(known - set(ledger)):
        batch_file = find_landed_file(landing, key)
        if batch_file is not None:
            unfinished[key] = batch_version(batch_file, label_files(landing, batch_file))
    requested = {r.partition_key for r in requests}
    gave_up = []
    for batch, md5 in sorted(unfinished.items()):
        if batch in busy or batch in requested:
            continue
        attempt = cursor.attempts.get(batch, 0) + 1
        if attempt > MAX_VALIDATION_ATTEMPTS:
            gave_up.append(batch)
            continue
        cursor.attempts[batch] = attempt
        requests.append(
            dg.RunRequest(
                run_key=f"batch:{md5}:retry{attempt}",
                partition_key=batch,
                tags={TRIGGER_TAG: "revalidate", "ml_assets/batch_md5": md5},
                **targets,
            )
        )
    cursor.attempts = {k: v for k, v in cursor.attempts.items() if k in unfinished}
    cursor.scan = found.state.to_json()
    to_add = sorted({b.key for b in found.new} - known)
    notes = [f"{name}: {why}" for name, why in {**found.waiting, **list_landing(landing).ignored}.items()]
    if found.more:
        notes.append(f"{found.more} more new file(s) wait for the next tick")
    if gave_up:
        notes.append(f"validation of {', '.join(gave_up)} failed {MAX_VALIDATION_ATTEMPTS} times; see their runs")
    for note in notes:
        context.log.info(note)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[landing_batches.build_add_request(to_add)] if to_add else [],
        cursor=cursor.to_json(),
        skip_reason=None if requests else ("; ".join(notes) or "no new complete files"),
    )


@dataclass
class RetrainCursor:
    """What the retrain sensor has read (one position per asset) and what is pending since the last retrain."""

    after: dict[str, int] = field(default_factory=dict)
    rows_pending: int = 0
    drift: dict[str, Any] | None = None
    last_drift_retrain_at: str | None = None
    counted: dict[str, str] = field(default_factory=dict)
    champion: str | None = None
    degradation: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, text: str | None) -> "RetrainCursor":
        """Reads a cursor; empty (or written by an older version) gives the initial state."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        """Writes the cursor."""
        return json.dumps(asdict(self), separators=(",", ":"))


WATCHED = ("training_snapshot", "validated_batch", "batch_drift", "live_performance", "champion_model")


def _new_materializations(instance: dg.DagsterInstance, asset: str, after: int) -> Iterator[dg.EventLogRecord]:
    """Every materialization of `asset` after storage id `after`, oldest first, page by page."""
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after),
            limit=1000,
            cursor=cursor,
            ascending=True,
        )
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}


def _read_events(cursor: RetrainCursor, instance: dg.DagsterInstance) -> None:
    """Folds every new event into the cursor, in the order they happened."""
    events = sorted(
        (record.storage_id, asset, record)
        for asset in WATCHED
        for record in _new_materializations(instance, asset, cursor.after.get(asset, 0))
    )
    for storage_id, asset, record in events:
        metadata = _metadata(record)
        cursor.after[asset] = max(cursor.after.get(asset, 0), storage_id)
        if asset == "training_snapshot":  # any training run (a manual one too) consumes the new rows
            cursor.rows_pending = 0
            if not (cursor.drift or {}).get("drifted"):
                cursor.drift = None
        elif asset == "validated_batch":
            batch, md5 = record.partition_key or "", str(metadata.get("source_md5", storage_id))
            if cursor.counted.get(batch) != md5:  # a re-validated unchanged batch is not new data
                cursor.counted[batch] = md5
                rows = int(
                    metadata.get("labelled_rows", metadata.get("dagster/row_count", 0))
                )  # scoring rows train nothing
                cursor.rows_pending += rows
                if cursor.degradation:
                    cursor.degradation["rows_since_attempt"] += rows
        elif asset == "batch_drift" and isinstance(metadata.get("report"), dict):
            if metadata["report"].get("drifted") or not (cursor.drift or {}).get("drifted"):
                cursor.drift = metadata["report"]  # a drift signal stays until a retrain handles it
        elif asset == "champion_model" and metadata.get("champion_version") is not None:
            version = str(metadata["champion_version"])
            if version != cursor.champion:
                cursor.champion = version
                cursor.degradation = None  # a new champion resolves the old one's degradation
        elif asset == "live_performance" and metadata.get("degraded"):
            version = str(metadata.get("champion_version"))
            if cursor.degradation is None or cursor.degradation["champion_version"] != version:
                cursor.degradation = {
                    "champion_version": version,
                    "detail": str(metadata.get("detail", "")),
                    "since": datetime.now(UTC).isoformat(),
                    "attempts": 0,
                    "last_attempt_at": None,
                    "rows_since_attempt": 0,
                    "batches": [],
                    "rollback_requested": False,
                }
            cursor.degradation["batches"] = sorted({*cursor.degradation["batches"], record.partition_key or ""})


def _degradation(raw: dict[str, Any] | None) -> Degradation | None:
    if raw is None:
        return None
    return Degradation(
        champion_version=raw["champion_version"],
        detail=raw["detail"],
        since=datetime.fromisoformat(raw["since"]),
        attempts=raw["attempts"],
        last_attempt_at=datetime.fromisoformat(raw["last_attempt_at"]) if raw["last_attempt_at"] else None,
        rows_since_attempt=raw["rows_since_attempt"],
    )


@dg.sensor(
    jobs=[training_job, live_rollback_job],
    minimum_interval_seconds=GRAPH.automation.retrain_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retrain_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    """Starts a training run when the retrain policy says so, and a rollback weighing for a degraded champion.

    It reads only events newer than its cursor: validated batches (rows), drift reports, live
    performance and champion changes. It waits while batches are still being validated or a training
    run is in flight, so one landing of many files gives one retrain. A degraded champion stays on
    its books until the champion changes: retrains are retried with backoff as new data arrives.
    """
    params = project.params()
    instance = context.instance
    cursor = RetrainCursor.from_json(context.cursor)
    _read_events(cursor, instance)
    busy = {r.job_name for r in _in_flight(instance)} & {ingest_batch_job.name, training_job.name}
    if busy:
        # A training run in flight picks up every batch validated before its snapshot step; what
        # it misses stays pending for the next decision.
        return dg.SensorResult(skip_reason=f"waiting for {', '.join(sorted(busy))} to finish", cursor=cursor.to_json())

    now = datetime.now(UTC)
    requests: list[dg.RunRequest] = []
    degradation = cursor.degradation
    if degradation and not degradation["rollback_requested"]:
        degradation["rollback_requested"] = True
        requests.append(
            dg.RunRequest(
                job_name=live_rollback_job.name,
                run_key=f"rollback:{degradation['champion_version']}:{degradation['since']}",
                run_config={
                    "ops": {
                        "weigh_rollback": {
                            "config": {
                                "champion_version": int(degradation["champion_version"]),
                                "batches": degradation["batches"],
                            }
                        }
                    }
                },
                tags={TRIGGER_TAG: "performance", "ml_assets/trigger_detail": degradation["detail"][:400]},
            )
        )
    decision = decide_retrain(
        validated_rows_since_champion=cursor.rows_pending,
        min_new_rows=params.retrain.min_new_rows,
        drift=DriftReport.from_dict(cursor.drift) if cursor.drift else None,
        last_drift_retrain_at=datetime.fromisoformat(cursor.last_drift_retrain_at)
        if cursor.last_drift_retrain_at
        else None,
        drift_cooldown=timedelta(hours=params.drift.cooldown_hours),
        now=now,
        degradation=_degradation(degradation),
        performance_retry=timedelta(minutes=params.retrain.performance_retry_minutes),
        champion_exists=cursor.champion is not None
        or instance.get_latest_materialization_event(dg.AssetKey("champion_model")) is not None,
    )
    if decision.retrain:
        context.log.info(f"retrain ({decision.reason}): {decision.detail}")
        requests.append(
            dg.RunRequest(
                job_name=training_job.name,
                run_key=f"retrain:{max(cursor.after.values(), default=0)}:{now.isoformat()}",
                tags={TRIGGER_TAG: str(decision.reason), "ml_assets/trigger_detail": decision.detail[:400]},
            )
        )
        cursor.rows_pending = 0  # the run takes them all
        if decision.reason == "drift":
            cursor.drift, cursor.last_drift_retrain_at = None, now.isoformat()
        if decision.reason == "performance" and degradation:
            degradation.update(attempts=degradation["attempts"] + 1, last_attempt_at=now.isoformat())
            degradation["rows_since_attempt"] = 0
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else decision.detail,
        cursor=cursor.to_json(),
    )


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
def alert_on_run_failure(
    context: dg.RunFailureSensorContext, alerts: AlertResource, project: ProjectResource, mlflow: MlflowResource
) -> None:
    """Alerts on every failed run, naming the failed steps and any failed blocking check; its MLflow runs end FAILED."""
    run = context.dagster_run
    mlflow.end_runs(run.run_id, experiment_name=project.params().registry.experiment_name, status="FAILED")
    failed_checks = [
        f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or 'failed'}"
        for e in _check_evaluations(context.instance, run.run_id)
        if not e.passed
    ]
    partition = run.tags.get("dagster/partition")
    trigger = run_trigger(run.tags)
    if TRIGGER_TAG not in run.tags:  # it failed before it started (`tag_run_trigger` tags runs as they start)
        context.instance.add_run_tags(run.run_id, {TRIGGER_TAG: trigger})
    detail = "; ".join(failed_checks) if failed_checks else (context.failure_event.message or "see the run's log")
    alerts.send(
        context,
        Alert(
            title=f"run `{run.job_name}`"
            + (f" for `{partition}`" if partition else "")
            + f" ({run.run_id[:8]}) failed",
            detail=detail,
            context={"run_id": run.run_id, "trigger": trigger},
        ),
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10
)
def close_mlflow_runs(context: dg.RunStatusSensorContext, project: ProjectResource, mlflow: MlflowResource) -> None:
    """Ends the MLflow run of a successful training run FINISHED (a failed one: `alert_on_run_failure`, FAILED).

    The MLflow run lives as long as the Dagster run, not as long as one step process; a step
    process that died cannot end it, so the run's end does.
    """
    run = context.dagster_run
    mlflow.end_runs(run.run_id, experiment_name=project.params().registry.experiment_name, status="FINISHED")


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


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def tag_run_trigger(context: dg.RunStatusSensorContext) -> None:
    """Tags every run with `ml_assets/trigger`, also those launched from the UI or by a backfill.

    Sensor and schedule runs carry the tag from their request; a run without it was launched by a
    person (Materialize, Materialize all, the launchpad) or by Dagster's own automation, which
    Dagster's own tags tell apart.
    """
    run = context.dagster_run
    if TRIGGER_TAG not in run.tags:
        context.instance.add_run_tags(run.run_id, {TRIGGER_TAG: run_trigger(run.tags)})


def run_trigger(tags: Mapping[str, str]) -> str:
    """Who or what started a run: its `ml_assets/trigger` tag, else what Dagster's own tags tell.

    Args:
        tags: The run's tags.

    Returns:
        `backfill`, `automation` (declarative automation), `manual` (a person), or the tag's value.
    """
    if TRIGGER_TAG in tags:
        return tags[TRIGGER_TAG]
    if "dagster/backfill" in tags:
        return "backfill"
    if "dagster/from_automation_condition" in tags or tags.get("dagster/sensor_name") == "per_batch_automation":
        return "automation"
    return "manual"


@dg.asset_sensor(
    asset_key=dg.AssetKey("rollout"),
    job=rollback_champion,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
def canary_rollback(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest | dg.SkipReason:
    """When the serving proxy rolls a new champion back (a canary or shadow guardrail), `champion` follows it back.

    The proxy only moves traffic; this sensor asks the one registry writer to move `champion` back
    to the version the proxy kept serving, and only if `champion` still points at the failed one.
    """
    materialization = asset_event.asset_materialization
    metadata = {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}
    if metadata.get("verdict") != "rolled_back" or not metadata.get("stable_version"):
        return dg.SkipReason(f"rollout step `{metadata.get('verdict')}`: nothing for the registry to do")
    failed, stable = int(metadata["candidate_version"]), int(metadata["stable_version"])
    return dg.RunRequest(
        run_key=f"canary_rollback:{failed}:{asset_event.timestamp}",
        run_config={
            "ops": {
                "roll_back_to": {
                    "config": {
                        "to_version": stable,
                        "expected_champion": failed,
                        "reason": f"serving rolled v{failed} back: {metadata.get('reason', '')}"[:900],
                        "requested_by": "automation:serving",
                    }
                }
            }
        },
        tags={TRIGGER_TAG: "serving_rollback"},
    )
