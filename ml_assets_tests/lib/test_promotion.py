"""The one champion writer: compare-and-set, pins, rolled-back versions, and the history, on a real MLflow store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml_assets.lib import promotion as P
from ml_assets.lib import tracking as T

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MODEL = "m"


@pytest.fixture
def registry(tmp_path: Path, mlflow_template: Path):
    import shutil

    from mlflow import MlflowClient

    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(tmp_path), run_id=None)
    return client


def move(client, to: str, expected: str | None, *, action="promote", automated=True) -> P.ChampionEvent:
    return P.move_champion(
        client,
        MODEL,
        to_version=to,
        expected=expected,
        action=action,
        reason=f"{action} v{to}",
        actor="test",
        run_id="run-1",
        now=NOW,
        automated=automated,
    )


def champion(client) -> str | None:
    return T.read_aliases(client, MODEL).get(T.CHAMPION)


def test_promotion_moves_champion_and_previous_and_records_history(registry):
    move(registry, "1", None)
    event = move(registry, "2", "1")
    assert champion(registry) == "2" and T.read_aliases(registry, MODEL)[T.PREVIOUS_CHAMPION] == "1"
    assert (event.seq, event.previous, event.version) == (2, "1", "2")
    history = P.history(registry.get_registered_model(MODEL).tags)
    assert [(e.action, e.version) for e in history] == [("promote", "1"), ("promote", "2")]


def test_a_stale_decision_changes_nothing(registry):
    """Promotion compared against v1, but a rollback moved champion to v3 meanwhile: no promotion."""
    move(registry, "1", None)
    move(registry, "3", "1", action="rollback", automated=False)
    with pytest.raises(P.PromotionRefused, match=r"is v3, not v1 as when this decision was made"):
        move(registry, "2", "1")
    assert champion(registry) == "3"
    assert [e.version for e in P.history(registry.get_registered_model(MODEL).tags)] == ["1", "3"]


def test_rollback_tags_the_replaced_version_and_automation_never_brings_it_back(registry):
    move(registry, "1", None)
    move(registry, "2", "1")
    registry.set_registered_model_alias(MODEL, T.CHALLENGER, "2")
    move(registry, "1", "2", action="rollback")
    assert P.ROLLED_BACK_TAG in registry.get_model_version(MODEL, "2").tags
    assert T.CHALLENGER not in T.read_aliases(registry, MODEL)  # it no longer points at the rolled-back version
    with pytest.raises(P.PromotionRefused, match="v2 was rolled back before"):
        move(registry, "2", "1")
    assert P.rollback_candidates(registry, MODEL, current="1") == []  # v2 is never a rollback target
    move(registry, "2", "1", action="approve", automated=False)  # a person still may
    assert champion(registry) == "2"


def test_a_pin_stops_automation_not_people(registry):
    move(registry, "1", None)
    P.set_pin(registry, MODEL, pinned=True, actor="ana", reason="audit", run_id="r", now=NOW)
    with pytest.raises(P.PromotionRefused, match="pinned to v1 by ana"):
        move(registry, "2", "1")
    assert P.refusal_for_automation(registry, MODEL, "2") is not None
    move(registry, "2", "1", action="approve", automated=False)
    P.set_pin(registry, MODEL, pinned=False, actor="ana", reason="done", run_id="r", now=NOW)
    assert P.current_pin(registry, MODEL) is None and P.refusal_for_automation(registry, MODEL, "3") is None
    actions = [e.action for e in P.history(registry.get_registered_model(MODEL).tags)]
    assert actions == ["promote", "pin", "approve", "unpin"]


def test_rollback_candidates_are_earlier_champions_newest_first(registry):
    move(registry, "1", None)
    move(registry, "2", "1")
    move(registry, "3", "2")
    assert P.rollback_candidates(registry, MODEL, current="3") == ["2", "1"]
