"""A person in the loop: approve a blocked challenger, force a rollback, pin the champion.

Three jobs a person launches from the UI (Jobs -> launchpad), each with typed config. They move
`champion` through the same compare-and-set writer as automation (`ml_assets/lib/promotion.py`),
in the same concurrency pool, and record who and why: as an event in `champion_history`, as tags on
the version, and as a materialization of `champion_model` and `champion_history` in the UI.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from ml_assets.defs.graph import WRITER_POOL
from ml_assets.defs.registry import history_metadata
from ml_assets.defs.resources import MlflowResource, ProjectResource

OPERATIONS_TAG = {"ml_assets/trigger": "person"}


class _PersonConfig(dg.Config):
    reason: str = Field(description="Why, in a sentence; kept in the champion history and on the version.")
    requested_by: str = Field(
        default="", description="Who asks; defaults to the run's `dagster/user` tag where Dagster sets one."
    )


class ApproveConfig(_PersonConfig):
    """Make a registered version champion although automation did not (a failed or undecided gate, a pin)."""

    version: int | None = Field(default=None, description="The version to approve; the `challenger` when empty.")


class RollbackConfig(_PersonConfig):
    """Move `champion` back to an earlier version; the current one is tagged rolled back."""

    to_version: int = Field(description="The version that becomes champion again.")
    expected_champion: int | None = Field(
        default=None, description="Roll back only if `champion` still points here (empty: whatever it points at)."
    )


class PinConfig(_PersonConfig):
    """Pin (or unpin) the champion: while pinned, automation trains and registers but never moves it."""

    pinned: bool = Field(default=True, description="True to pin the current champion, False to remove the pin.")


def _actor(context: dg.OpExecutionContext, config: _PersonConfig) -> str:
    actor = context.run.tags.get("dagster/user") or config.requested_by.strip()
    if not actor or not config.reason.strip():
        raise dg.Failure(
            description="say who asks and why: set `requested_by` and `reason` in the launchpad config; nothing changed"
        )
    return actor


def _record(context: dg.OpExecutionContext, mlflow: MlflowResource, name: str, event: Any) -> None:
    metadata = {"champion_version": int(event.version), "action": event.action, "by": event.actor}
    if event.previous and event.previous != event.version:
        metadata["replaced_version"] = int(event.previous)
    context.log_event(dg.AssetMaterialization("champion_model", metadata={**metadata, "reason": event.reason}))
    context.log_event(dg.AssetMaterialization("champion_history", metadata=history_metadata(mlflow, name)))


@dg.op(pool=WRITER_POOL)
def approve_version(
    context: dg.OpExecutionContext, config: ApproveConfig, project: ProjectResource, mlflow: MlflowResource
) -> None:
    """Promotes the chosen version (the challenger by default) on a person's word."""
    from ml_assets.lib import promotion, tracking

    name, client = project.params().registry.model_name, mlflow.client()
    aliases = tracking.read_aliases(client, name)
    version = str(config.version) if config.version is not None else aliases.get(tracking.CHALLENGER)
    if version is None:
        raise dg.Failure(description=f"`{name}` has no `challenger` to approve; name a `version`")
    actor = _actor(context, config)
    try:
        event = promotion.move_champion(
            client,
            name,
            to_version=version,
            expected=aliases.get(tracking.CHAMPION),
            action="approve",
            reason=config.reason,
            actor=actor,
            run_id=context.run_id,
            now=datetime.now(UTC),
            automated=False,
        )
    except promotion.PromotionRefused as refused:
        raise dg.Failure(description=str(refused)) from refused
    client.set_model_version_tag(name, version, "ml_assets.approved_by", f"{actor}: {config.reason}"[:4000])
    _record(context, mlflow, name, event)


@dg.op(pool=WRITER_POOL)
def roll_back_to(
    context: dg.OpExecutionContext, config: RollbackConfig, project: ProjectResource, mlflow: MlflowResource
) -> None:
    """Moves `champion` to the named version and tags the version it replaces as rolled back."""
    from ml_assets.lib import promotion, tracking

    name, client = project.params().registry.model_name, mlflow.client()
    actor = _actor(context, config)
    try:
        event = promotion.move_champion(
            client,
            name,
            to_version=str(config.to_version),
            expected=str(config.expected_champion)
            if config.expected_champion is not None
            else tracking.read_aliases(client, name).get(tracking.CHAMPION),
            action="rollback",
            reason=config.reason,
            actor=actor,
            run_id=context.run_id,
            now=datetime.now(UTC),
            automated=False,
        )
    except promotion.PromotionRefused as refused:
        raise dg.Failure(description=str(refused)) from refused
    _record(context, mlflow, name, event)


@dg.op(pool=WRITER_POOL)
def set_pin(
    context: dg.OpExecutionContext, config: PinConfig, project: ProjectResource, mlflow: MlflowResource
) -> None:
    """Pins the current champion, or removes the pin."""
    from ml_assets.lib import promotion

    name, client = project.params().registry.model_name, mlflow.client()
    try:
        event = promotion.set_pin(
            client,
            name,
            pinned=config.pinned,
            actor=_actor(context, config),
            reason=config.reason,
            run_id=context.run_id,
            now=datetime.now(UTC),
        )
    except promotion.PromotionRefused as refused:
        raise dg.Failure(description=str(refused)) from refused
    context.log_event(dg.AssetMaterialization("champion_history", metadata=history_metadata(mlflow, name)))
    context.log.info(f"`{name}@champion` v{event.version}: {event.action} by {event.actor}")


@dg.job(tags=OPERATIONS_TAG, description="Approve a challenger that automation did not promote; records who and why.")
def approve_challenger() -> None:
    """Approve a challenger."""
    approve_version()


@dg.job(
    tags=OPERATIONS_TAG, description="Force `champion` back to a named version; the replaced one is tagged rolled back."
)
def rollback_champion() -> None:
    """Force a rollback."""
    roll_back_to()


@dg.job(
    tags=OPERATIONS_TAG, description="Pin the champion (automation may train and register, not promote) or unpin it."
)
def pin_champion() -> None:
    """Pin or unpin."""
    set_pin()


OPERATION_JOBS = [approve_challenger, rollback_champion, pin_champion]
