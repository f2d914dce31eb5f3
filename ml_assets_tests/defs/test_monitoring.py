"""Live performance you can act on: a degraded champion fails its check; rollback only to a credibly better one."""

from __future__ import annotations

import pandas as pd

from ml_assets.definitions import defs
from ml_assets.defs.sensors import retrain_sensor
from ml_assets.lib import promotion, tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.defs.test_sensors import skipped, tick
from ml_assets_tests.graph import failed_checks, ingest, train


def output_metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def champion(project: Project) -> str:
    return tracking.read_aliases(project.mlflow_client(), MODEL)[tracking.CHAMPION]


def run_rollback(project: Project, request) -> dict:
    result = defs.resolve_job_def("live_rollback_job").execute_in_process(
        run_config=request.run_config, instance=project.instance, resources=project.resources()
    )
    assert result.success
    return {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}


def test_concept_drift_degrades_the_champion_which_stays_on_the_books(trained: Project, webhook):
    url, received = webhook
    trained.webhook_url = url
    before = tick(retrain_sensor, trained)
    [drifted] = trained.land(batches=1, rows=400, seed=41, start="2027-05-01", concept_drift=1.0)
    result = ingest(trained, drifted.name)[drifted.name]
    assert result.success  # the batch itself is valid: only the relation between features and label changed
    live = output_metadata(result, "live_performance")
    assert live["degraded"] and live["champion_version"] == 1 and live["champion_score"] < 0.5
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "champion_meets_min_live_score"]
    assert not check.passed and "below the minimum" in (check.description or "")
    assert any("v1 degraded" in a["title"] and "force a rollback or pin" in a["detail"] for a in received)

    after = tick(retrain_sensor, trained, cursor=before.cursor)
    by_job = {r.job_name: r for r in after.run_requests}
    assert set(by_job) == {"live_rollback_job", "training_job"}
    assert by_job["training_job"].tags["ml_assets/trigger"] == "performance"
    assert run_rollback(trained, by_job["live_rollback_job"]) == {}  # v1 has no earlier version: nothing moves
    assert champion(trained) == "1"
    assert any("no earlier version is better" in a["title"] for a in received)

    # the retrain did not replace v1 (here: it did not run); the degradation is not forgotten
    later = tick(retrain_sensor, trained, cursor=after.cursor)
    assert later.run_requests == [] and "degraded since" in skipped(later) and "pin" in skipped(later)


def test_rollback_only_to_a_credibly_better_version_which_then_never_comes_back(trained: Project):
    original = (trained.root / "params.yaml").read_text()
    columns = pd.read_csv(next(trained.landing.iterdir())).columns

    def weak_but_promoted(raw):  # v2 sees only weak features and is let through every gate
        raw["data"]["id_columns"] = [c for c in columns if c not in {"customer_id", "age", "region", "churned"}]
        raw["gates"].update(min_roc_auc=0.0, min_f1=0.0, baseline_margin=-1.0, non_inferiority_margin=1.0)
        raw["gates"].update(min_class_share=0.0, min_slice_roc_auc=0.0, max_slice_regression=1.0)

    trained.edit_params(weak_but_promoted)
    weak_params = (trained.root / "params.yaml").read_text()
    promoted = train(trained)
    assert promoted.success, failed_checks(promoted)
    assert champion(trained) == "2"

    (trained.root / "params.yaml").write_text(original)
    trained.edit_params(lambda raw: raw["retrain"].update(min_live_score=0.75))
    before = tick(retrain_sensor, trained)
    [labelled] = sorted(trained.instance.get_dynamic_partitions("landing_batches"))[:1]
    assert output_metadata(ingest(trained, labelled)[labelled], "live_performance")["degraded"]  # v2 on known rows
    after = tick(retrain_sensor, trained, cursor=before.cursor)
    [rollback] = [r for r in after.run_requests if r.job_name == "live_rollback_job"]
    events = run_rollback(trained, rollback)
    assert champion(trained) == "1" and set(events) == {"champion_model", "champion_history"}
    client = trained.mlflow_client()
    assert promotion.ROLLED_BACK_TAG in client.get_model_version(MODEL, "2").tags
    last = promotion.history(client.get_registered_model(MODEL).tags)[-1]
    assert (last.action, last.version, last.previous) == ("rollback", "1", "2") and "credibly" not in last.actor
    assert last.metrics["live_roc_auc_v1"] > last.metrics["live_roc_auc_v2"]

    # a retrain on the same data and setup resolves to v2 by fingerprint: automation never promotes it again
    (trained.root / "params.yaml").write_text(weak_params)
    again = train(trained)
    failed = failed_checks(again)
    assert "automation_may_promote" in failed and "rolled back before" in failed["automation_may_promote"]
    assert champion(trained) == "1"
