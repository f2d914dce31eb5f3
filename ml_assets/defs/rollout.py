"""Serving: the `rollout` asset, reported by the serving proxy (`make serve`) at every step of a rollout.

Dagster does not materialize it: the proxy posts each step to the webserver's
`/report_asset_materialization/rollout` endpoint (and each judged guardrail to `/report_asset_check/rollout`),
so the UI shows the traffic split over time (`candidate_share` in the asset's plots) and every verdict.
A sensor can react to `verdict == "rolled_back"` with the machine-readable `candidate_version` and `reason`.
"""

import dagster as dg

from ml_assets.defs.graph import OWNERS
from ml_assets.lib.rollout import GUARDRAILS

ROLLOUT_KEY = dg.AssetKey("rollout")

rollout = dg.AssetSpec(
    key=ROLLOUT_KEY,
    description=(
        "How the serving proxy moves traffic to a new champion: one materialization per rollout step "
        "(started, widened, promoted_full, rolled_back, aborted, superseded) with the stable and candidate "
        "versions, the candidate's share, requests, error rates, p50/p99 latency per version and shadow agreement."
    ),
    group_name="serving",
    kinds={"mlflow", "python"},
    owners=OWNERS,
    code_version="1",
    metadata={"reported_by": "python -m ml_assets.serving (make serve)"},
)

_DESCRIPTIONS = {
    "error_rate": "The candidate's share of 5xx answers and timeouts in a step stays within `serving.max_error_rate`.",
    "rejection_rate": "The candidate rejects (4xx) at most `serving.max_error_rate` more requests than stable.",
    "p99_latency_ratio": "The candidate's p99 latency over stable's stays within `serving.max_p99_latency_ratio`.",
    "agreement": "In shadow, both versions predict the same class on at least `serving.min_agreement` of rows.",
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(f"{name}_within_bound", asset=ROLLOUT_KEY, description=_DESCRIPTIONS[name], blocking=False)
        for name in GUARDRAILS
    ],
    can_subset=True,
)
def rollout_guardrails(context: dg.AssetCheckExecutionContext):
    """Re-reads each guardrail from the last reported rollout step (the proxy reports them as it judges)."""
    from ml_assets.lib.rollout_report import recorded_guardrail

    event = context.instance.get_latest_materialization_event(ROLLOUT_KEY)
    materialization = event.asset_materialization if event is not None else None
    metadata = {k: v.value for k, v in materialization.metadata.items()} if materialization is not None else {}
    for key in context.selected_asset_check_keys:
        name = key.name.removesuffix("_within_bound")
        reading = recorded_guardrail(metadata, name)
        yield dg.AssetCheckResult(
            check_name=key.name,
            asset_key=ROLLOUT_KEY,
            passed=reading.passed is not False,
            metadata={
                "observed": reading.observed,
                "bound": reading.bound,
                "judged": reading.passed is not None,
                "step": reading.detail if metadata else "no rollout step reported yet",
            },
        )
