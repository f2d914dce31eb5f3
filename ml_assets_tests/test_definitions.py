"""The code location loads, cheaply, and its graph matches this snapshot: renames are deliberate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ml_assets.definitions import defs

GRAPH = {
    "landed_batch": "ingestion",
    "validated_batch": "ingestion",
    "training_snapshot": "ingestion",
    "dataset_split": "features",
    "feature_pipeline": "features",
    "candidate_logistic_regression": "training",
    "candidate_random_forest": "training",
    "candidate_hist_gradient_boosting": "training",
    "trained_model": "training",
    "model_evaluation": "evaluation",
    "registered_model": "registry",
    "champion_model": "registry",
    "champion_history": "registry",
    "batch_drift": "monitoring",
    "live_performance": "monitoring",
    "predictions": "inference",
    "rollout": "serving",
}

CHECKS = {
    "landed_batch": {
        "columns_and_dtypes",
        "null_limits",
        "numeric_ranges",
        "categorical_domains",
        "target",
        "row_count",
        "duplicates",
    },
    "training_snapshot": {"rows_accounted_for"},
    "dataset_split": {"split_sizes_as_configured", "no_target_leakage"},
    "feature_pipeline": {"no_nan_or_inf_after_transform"},
    "model_evaluation": {
        "meets_min_roc_auc",
        "meets_min_f1",
        "beats_baseline",
        "latency_within_bound",
        "no_null_predictions",
        "predicts_every_class",
        "slices_meet_min_roc_auc",
    },
    "registered_model": {
        "loads_from_registry_and_matches",
        "serving_matches_training",
        "no_regression_vs_champion",
        "no_slice_regression_vs_champion",
        "automation_may_promote",
    },
    "live_performance": {"champion_meets_min_live_score"},
    "rollout": {
        "error_rate_within_bound",
        "rejection_rate_within_bound",
        "p99_latency_ratio_within_bound",
        "agreement_within_bound",
    },
}
MONITORS = {"champion_meets_min_live_score"} | CHECKS["rollout"]
"""Checks that report (a failed check in the UI, an alert) without stopping the batch's other steps.

`rollout`'s are reported by the serving proxy, which Dagster does not run: nothing waits on them.
"""


def test_asset_keys_and_groups_match_the_snapshot():
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == GRAPH


def test_every_asset_is_described_owned_and_versioned():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 30, key
        assert node.owners == ["team:ml-platform"], key
        assert node.code_version, key
        assert node.kinds, key


def test_checks_match_the_snapshot_and_gates_block():
    owners = [*(defs.asset_checks or []), *(defs.assets or [])]
    # an external AssetSpec (`rollout`) has no check_specs: its checks are definitions of their own
    specs = [spec for definition in owners for spec in getattr(definition, "check_specs", ())]
    found: dict[str, set[str]] = {}
    for spec in specs:
        found.setdefault(spec.asset_key.to_user_string(), set()).add(spec.name)
        assert spec.blocking is (spec.name not in MONITORS), spec.name
    assert found == CHECKS


def test_sensors_and_schedule_are_on_by_default():
    statuses = {s.name: s.default_status for s in defs.sensors or []}
    assert statuses == {
        "landing_sensor": dg.DefaultSensorStatus.RUNNING,
        "retrain_sensor": dg.DefaultSensorStatus.RUNNING,
        "alert_on_run_failure": dg.DefaultSensorStatus.RUNNING,
        "close_mlflow_runs": dg.DefaultSensorStatus.RUNNING,
        "per_batch_automation": dg.DefaultSensorStatus.RUNNING,
        "tag_run_trigger": dg.DefaultSensorStatus.RUNNING,
        "canary_rollback": dg.DefaultSensorStatus.RUNNING,
    }
    [schedule] = defs.schedules or []
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_loading_the_code_location_imports_nothing_heavy():
    code = (
        "import sys, json, ml_assets.definitions; "
        "print(json.dumps([m for m in ('mlflow', 'great_expectations', 'sklearn', 'scipy', 'dvc', 'matplotlib') "
        "if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_string_asset_selection_works_despite_dvc_pinning_antlr():
    """dvc's omegaconf pins antlr 4.9, which breaks Dagster's selection parser; we override it to 4.13."""
    selected = dg.AssetSelection.from_string("group:training").resolve(defs.resolve_asset_graph())
    assert {k.to_user_string() for k in selected} == {k for k, g in GRAPH.items() if g == "training"}
    dagster = Path(sys.executable).with_name("dagster")
    listed = subprocess.run(
        [str(dagster), "asset", "list", "-m", "ml_assets.definitions", "--select", "key:*model* or group:registry"],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert {"trained_model", "model_evaluation", "registered_model", "champion_model"} <= set(listed.stdout.split())
