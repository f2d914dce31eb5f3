"""The `rollout` asset: a step reported like the proxy does, and its guardrail checks re-reading it."""

from __future__ import annotations

import contextvars
from pathlib import Path

import dagster as dg

from ml_assets.defs.rollout import ROLLOUT_KEY, rollout, rollout_guardrails
from ml_assets.lib.config import ServingParams
from ml_assets.lib.rollout import VersionWindow, judge
from ml_assets.lib.rollout_report import StepReport


def window(*, ok: int, errors: int = 0, seconds: float = 0.01) -> VersionWindow:
    w = VersionWindow()
    for status, n in ((200, ok), (500, errors)):
        for _ in range(n):
            w.record(status=status, seconds=seconds)
    return w


def run_checks(instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    result = contextvars.Context().run(
        dg.materialize,
        [rollout, rollout_guardrails],
        instance=instance,
        selection=dg.AssetSelection.checks_for_assets(ROLLOUT_KEY),
    )
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_rolled_back_step_fails_its_guardrail_check_and_names_the_version(tmp_path: Path):
    params = ServingParams(min_requests_per_step=100)
    candidate, stable = window(ok=10, errors=10), window(ok=200)
    decision = judge(params, step=0, elapsed_seconds=3, candidate=candidate, stable=stable)
    assert decision.action == "rollback"
    report = StepReport(
        verdict="rolled_back",
        reason=decision.reason,
        model_name="churn_classifier",
        mode="canary",
        stable_version="1",
        candidate_version="2",
        step=0,
        steps=3,
        share=0.0,
        shadow=False,
        elapsed_seconds=3,
        stable=stable,
        candidate=candidate,
        agreement=None,
        guardrails=decision.guardrails,
    )
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        before = run_checks(instance)
        assert all(e.passed for e in before.values())  # nothing reported yet: nothing crossed

        # what POST /report_asset_materialization/rollout does inside the webserver
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=ROLLOUT_KEY, metadata=report.metadata()))
        latest = instance.get_latest_materialization_event(ROLLOUT_KEY)
        assert latest is not None and latest.asset_materialization is not None
        metadata = {k: v.value for k, v in latest.asset_materialization.metadata.items()}
        assert metadata["verdict"] == "rolled_back" and metadata["candidate_version"] == "2"
        assert "error_rate" in metadata["reason"] and metadata["candidate_share"] == 0.0

        after = run_checks(instance)
    assert not after["error_rate_within_bound"].passed
    assert after["error_rate_within_bound"].metadata["observed"].value == 0.5
    assert after["error_rate_within_bound"].metadata["bound"].value == params.max_error_rate
    assert after["p99_latency_ratio_within_bound"].passed  # not judged before the minimum sample
    assert after["p99_latency_ratio_within_bound"].metadata["judged"].value is False
