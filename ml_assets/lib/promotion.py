"""The one writer of the `champion` alias: promotion, approval, rollback and pinning as compare-and-set.

Every move of `champion` goes through `move_champion`, which (1) re-reads the alias and refuses
unless it still points at the version the decision was made against, (2) refuses automated moves
while a person has pinned the champion or onto a version that was rolled back, (3) appends the
event to the champion history, then (4) moves `champion` and `previous_champion`. Dagster runs the
writers one at a time (the `registry` concurrency pool), so the compare-and-set only has to guard
against a decision that went stale while it was being made.

The history lives in the registry itself, as registered-model tags `ml_assets.history.<n>` (JSON),
so `make run`, the sensors and a person in the MLflow UI all read the same book.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ml_assets.lib.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, RegistryUnavailable, read_aliases

if TYPE_CHECKING:
    from mlflow import MlflowClient

HISTORY_PREFIX = "ml_assets.history."
PINNED_TAG = "ml_assets.pinned"
ROLLED_BACK_TAG = "ml_assets.rolled_back"
ACTIONS = ("promote", "approve", "rollback", "pin", "unpin")


class PromotionRefused(RuntimeError):
    """The champion was left as it is; the message says why and what a person can do."""


@dataclass(frozen=True)
class ChampionEvent:
    """One entry of the champion history.

    Attributes:
        seq: Position in the history, from 1.
        at: When, ISO 8601 UTC.
        action: One of `ACTIONS`.
        version: The champion after the event (for pin/unpin: the pinned version).
        previous: The champion before the event.
        reason: Why, in a sentence.
        actor: Who or what: `automation:<trigger>` or a person's name.
        run_id: The Dagster run that wrote it.
        metrics: Figures that justified it (holdout or live scores).
    """

    seq: int
    at: str
    action: str
    version: str | None
    previous: str | None
    reason: str
    actor: str
    run_id: str
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_tag(self) -> tuple[str, str]:
        """The registered-model tag that stores this event."""
        return f"{HISTORY_PREFIX}{self.seq:06d}", json.dumps(asdict(self), sort_keys=True, default=float)


def history(tags: Mapping[str, str]) -> list[ChampionEvent]:
    """The champion history, oldest first, from the registered model's tags."""
    return [ChampionEvent(**json.loads(v)) for k, v in sorted(tags.items()) if k.startswith(HISTORY_PREFIX)]


@dataclass(frozen=True)
class Pin:
    """A person's pin: automation may train and register, but not move `champion`."""

    version: str
    actor: str
    reason: str
    at: str


def _model_tags(client: MlflowClient, model_name: str) -> dict[str, str]:
    try:
        return dict(client.get_registered_model(model_name).tags or {})
    except Exception as error:
        raise RegistryUnavailable(
            f"the MLflow registry at `{client.tracking_uri}` could not read `{model_name}` ({error}); nothing changed"
        ) from error


def current_pin(client: MlflowClient, model_name: str) -> Pin | None:
    """The pin in force, or None."""
    raw = _model_tags(client, model_name).get(PINNED_TAG)
    return Pin(**json.loads(raw)) if raw else None


def refusal_for_automation(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Why automation may not make `version` champion (pinned, or rolled back before), or None."""
    pin = current_pin(client, model_name)
    if pin is not None:
        return (
            f"`{model_name}@champion` is pinned to v{pin.version} by {pin.actor} since {pin.at} ({pin.reason}); "
            f"automation registers v{version} but does not promote it. Approve it with `approve_challenger` "
            "or unpin with `pin_champion` (pinned: false)"
        )
    rolled_back = client.get_model_version(model_name, version).tags.get(ROLLED_BACK_TAG)
    if rolled_back:
        return (
            f"v{version} was rolled back before ({rolled_back}); automation never promotes it again. "
            "A person may still approve it with `approve_challenger`"
        )
    return None


def move_champion(
    client: MlflowClient,
    model_name: str,
    *,
    to_version: str,
    expected: str | None,
    action: str,
    reason: str,
    actor: str,
    run_id: str,
    now: datetime,
    automated: bool,
    metrics: Mapping[str, float] | None = None,
) -> ChampionEvent:
    """Moves `champion` to `to_version` if it still points at `expected`; records the event.

    Args:
        client: The registry.
        model_name: The registered model.
        to_version: The version that becomes champion.
        expected: The champion the decision was made against (None: there was none).
        action: `promote`, `approve` or `rollback`.
        reason: Why, in a sentence (kept in the history).
        actor: Who: `automation:<trigger>` or a person.
        run_id: The Dagster run making the move.
        now: The current time (UTC).
        automated: True for sensors and training runs: they respect pins and rolled-back tags.
        metrics: Figures that justified the move.

    Returns:
        The recorded event.

    Raises:
        PromotionRefused: The champion moved since the decision, is pinned, or `to_version` was
            rolled back (automated only). Nothing was changed.
        RegistryUnavailable: The registry could not be asked or written. Nothing was changed, or
            the history shows an event whose alias move did not finish (see `history`).
    """
    if action not in ("promote", "approve", "rollback"):
        raise ValueError(f"action `{action}` cannot move the champion; use promote, approve or rollback")
    aliases = read_aliases(client, model_name)
    current = aliases.get(CHAMPION)
    if current != expected:
        raise PromotionRefused(
            f"`{model_name}@champion` is {_v(current)}, not {_v(expected)} as when this decision was made "
            f"(another promotion or rollback came first); v{to_version} is not promoted. Run the training "
            "again to compare it with the current champion, or approve it explicitly"
        )
    if automated and (refusal := refusal_for_automation(client, model_name, to_version)):
        raise PromotionRefused(refusal)
    tags = _model_tags(client, model_name)
    event = ChampionEvent(
        seq=len(history(tags)) + 1,
        at=now.isoformat(timespec="seconds"),
        action=action,
        version=to_version,
        previous=current,
        reason=reason,
        actor=actor,
        run_id=run_id,
        metrics=dict(metrics or {}),
    )
    try:
        client.set_registered_model_tag(model_name, *event.to_tag())  # the intent first: a crash leaves a trace
        client.set_registered_model_alias(model_name, CHAMPION, to_version)
        if current is not None and current != to_version:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, current)
        if action == "rollback" and current is not None:
            client.set_model_version_tag(model_name, current, ROLLED_BACK_TAG, f"{event.at}: {reason}")
            if aliases.get(CHALLENGER) == current:
                client.delete_registered_model_alias(model_name, CHALLENGER)
    except Exception as error:
        raise RegistryUnavailable(
            f"the MLflow registry at `{client.tracking_uri}` failed while moving `{model_name}@champion` "
            f"from {_v(current)} to v{to_version} ({error}). Read `{model_name}@champion` before anything else; "
            f"history event {event.seq} records the intent"
        ) from error
    return event


def set_pin(
    client: MlflowClient, model_name: str, *, pinned: bool, actor: str, reason: str, run_id: str, now: datetime
) -> ChampionEvent:
    """Pins the current champion (automation stops promoting and rolling back) or removes the pin."""
    current = read_aliases(client, model_name).get(CHAMPION)
    if pinned and current is None:
        raise PromotionRefused(f"`{model_name}` has no champion to pin; promote or approve a version first")
    at = now.isoformat(timespec="seconds")
    tags = _model_tags(client, model_name)
    event = ChampionEvent(
        seq=len(history(tags)) + 1,
        at=at,
        action="pin" if pinned else "unpin",
        version=current,
        previous=current,
        reason=reason,
        actor=actor,
        run_id=run_id,
    )
    client.set_registered_model_tag(model_name, *event.to_tag())
    if pinned:
        pin = Pin(version=str(current), actor=actor, reason=reason, at=at)
        client.set_registered_model_tag(model_name, PINNED_TAG, json.dumps(asdict(pin)))
    elif PINNED_TAG in tags:
        client.delete_registered_model_tag(model_name, PINNED_TAG)
    return event


def rollback_candidates(client: MlflowClient, model_name: str, *, current: str) -> list[str]:
    """Earlier champions, most recent first, that automation may roll back to (never one rolled back before)."""
    seen: list[str] = []
    for event in reversed(history(_model_tags(client, model_name))):
        for version in (event.version, event.previous):
            if version and version != current and version not in seen:
                seen.append(version)
    return [v for v in seen if not client.get_model_version(model_name, v).tags.get(ROLLED_BACK_TAG)]


@dataclass(frozen=True)
class RollbackOutcome:
    """What `roll_back_if_better` decided and did.

    Attributes:
        detail: The rule's verdict, naming every version weighed.
        event: The rollback recorded, or None when nothing moved.
        refused: Why the writer refused a rollback the rule asked for (a pin, a newer champion).
        unscorable: Earlier versions that could not score the live rows (never candidates).
    """

    detail: str
    event: ChampionEvent | None = None
    refused: str | None = None
    unscorable: list[str] = field(default_factory=list)


def roll_back_if_better(
    client: MlflowClient,
    tracking_uri: str,
    model_name: str,
    *,
    rows: Any,
    target: str,
    current: str,
    min_score: float,
    samples: int,
    confidence: float,
    seed: int,
    run_id: str,
    now: datetime,
) -> RollbackOutcome:
    """Scores the degraded champion and every earlier champion on the same live rows; rolls back if the rule says so.

    The rule is `ml_assets.lib.retrain.decide_rollback`; the move goes through `move_champion`
    (compare-and-set against `current`, pins respected, never onto a version rolled back before).
    """
    from ml_assets.lib.retrain import decide_rollback
    from ml_assets.lib.tracking import load_model

    features = rows.drop(columns=[target])
    proba, classes, unscorable = {}, None, []
    for version in [current, *rollback_candidates(client, model_name, current=current)]:
        try:
            model = load_model(tracking_uri, f"models:/{model_name}/{version}")
            if classes is not None and [str(c) for c in model.classes_] != [str(c) for c in classes]:
                raise ValueError(f"it predicts other classes ({list(model.classes_)})")
            proba[version], classes = model.predict_proba(features), classes or list(model.classes_)
        except Exception as error:  # an earlier version that cannot score today's rows is no candidate
            if version == current:
                return RollbackOutcome(detail=f"the champion v{current} cannot score the live rows ({error})")
            unscorable.append(f"v{version}: {error}")
    decision = decide_rollback(
        rows[target],
        proba,
        current=current,
        classes=classes or [],
        min_score=min_score,
        samples=samples,
        confidence=confidence,
        seed=seed,
    )
    if decision.to_version is None:
        return RollbackOutcome(detail=decision.detail, unscorable=unscorable)
    try:
        event = move_champion(
            client,
            model_name,
            to_version=decision.to_version,
            expected=current,
            action="rollback",
            reason=decision.detail[:1000],
            actor="automation:performance",
            run_id=run_id,
            now=now,
            automated=True,
            metrics={f"live_roc_auc_v{v}": s for v, s in decision.scores.items()},
        )
    except PromotionRefused as refused:
        return RollbackOutcome(detail=decision.detail, refused=str(refused), unscorable=unscorable)
    return RollbackOutcome(detail=decision.detail, event=event, unscorable=unscorable)


def history_records(events: list[ChampionEvent]) -> list[dict[str, Any]]:
    """The history as flat rows for a table (newest first)."""
    return [
        {
            "seq": e.seq,
            "at": e.at,
            "action": e.action,
            "champion": f"v{e.version}" if e.version else "-",
            "before": f"v{e.previous}" if e.previous else "-",
            "actor": e.actor,
            "reason": e.reason,
            "run": e.run_id[:8],
        }
        for e in reversed(events)
    ]


def _v(version: str | None) -> str:
    return f"v{version}" if version else "unset"
