"""Live performance: a degraded champion alerts, rolls back to a better previous version, and retrains."""

from __future__ import annotations

import pandas as pd

from ml_assets.defs.sensors import retrain_sensor
from ml_assets.lib import tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.defs.test_sensors import tick
from ml_assets_tests.graph import failed_checks, ingest, train


def output_metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_degraded_champion_rolls_back_alerts_and_retrains(trained: Project, webhook):
    url, received = webhook
    trained.webhook_url = url
    original = (trained.root / "params.yaml").read_text()
    columns = pd.read_csv(next(trained.landing.iterdir())).columns

    def weak_but_promoted(raw):  # v2 sees only weak features and is let through every gate
        raw["data"]["id_columns"] = [c for c in columns if c not in {"customer_id", "age", "region", "churned"}]
        raw["gates"].update(min_roc_auc=0.0, min_f1=0.0, baseline_margin=-1.0, max_regression=1.0, min_class_share=0.0)

    trained.edit_params(weak_but_promoted)
    promoted = train(trained)
    assert promoted.success, failed_checks(promoted)
    client = trained.mlflow_client()
    assert str(client.get_model_version_by_alias(MODEL, tracking.CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias(MODEL, tracking.PREVIOUS_CHAMPION).version) == "1"

    (trained.root / "params.yaml").write_text(original)
    trained.edit_params(lambda raw: raw["retrain"].update(min_live_score=0.75))
    before = tick(retrain_sensor, trained)

    [labelled] = trained.land(batches=1, rows=400, seed=41, start="2027-05-01")
    result = ingest(trained, labelled.name)[labelled.name]
    assert result.success
    live = output_metadata(result, "live_performance")
    assert live["degraded"] and live["champion_version"] == 2 and live["rolled_back_to"] == 1
    assert live["previous_score"] > live["champion_score"]
    assert str(client.get_model_version_by_alias(MODEL, tracking.CHAMPION).version) == "1"
    assert "ml_assets.rolled_back" in client.get_model_version(MODEL, "2").tags

    logs = [entry.user_message for entry in trained.instance.all_logs(result.run_id)]
    assert any(m.startswith("[ml_assets error]") and "degraded" in m for m in logs)  # the UI shows it in the run
    [alert] = received
    assert "v2 degraded" in alert["title"] and "moved back to v1" in alert["detail"]

    after = tick(retrain_sensor, trained, cursor=before.cursor)
    [request] = after.run_requests
    assert request.tags["ml_assets/trigger"] == "performance"


def test_healthy_champion_is_left_alone(trained: Project):
    [labelled] = trained.land(batches=1, rows=400, seed=42, start="2027-05-02")
    result = ingest(trained, labelled.name)[labelled.name]
    live = output_metadata(result, "live_performance")
    assert live["status"] == "ok" and not live["degraded"]
    assert str(trained.mlflow_client().get_model_version_by_alias(MODEL, tracking.CHAMPION).version) == "1"
