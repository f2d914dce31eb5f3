"""`ml_assets.lib.rollout` and `rollout_report`: deterministic split, schedule, guardrails, counters, reports."""

from __future__ import annotations

import dataclasses

import pytest

from ml_assets.lib.config import ParamsError, ServingParams, parse_params
from ml_assets.lib.rollout import (
    Agreement,
    Step,
    VersionWindow,
    bucket,
    judge,
    request_id_for,
    routes_to_candidate,
    schedule,
)
from ml_assets.lib.rollout_report import StepReport

PARAMS = ServingParams(
    mode="canary", canary_steps=(0.1, 0.5, 1.0), step_seconds=10, min_requests_per_step=100, max_error_rate=0.02
)


def window(*, ok: int = 0, errors: int = 0, rejected: int = 0, seconds: float = 0.01) -> VersionWindow:
    w = VersionWindow(size=1000)
    for status, n in ((200, ok), (500, errors), (400, rejected)):
        for _ in range(n):
            w.record(status=status, seconds=seconds)
    return w


# -- split


def test_the_split_is_deterministic_by_id_and_the_header_wins_over_the_body():
    assert bucket("client-42") == bucket("client-42")
    assert 0 <= bucket("client-42") < 1
    assert request_id_for("client-42", b"{}") == "client-42"
    assert request_id_for(None, b'{"a": 1}') == request_id_for("  ", b'{"a": 1}') != request_id_for(None, b'{"a": 2}')


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5, 0.9])
def test_the_share_of_many_ids_is_within_tolerance(share: float):
    n = 20_000
    hits = sum(routes_to_candidate(f"id-{i}", share=share) for i in range(n))
    sigma = (share * (1 - share) / n) ** 0.5
    assert abs(hits / n - share) < 4 * sigma


def test_a_client_on_the_candidate_stays_on_it_while_the_share_widens():
    ids = [f"u{i}" for i in range(2000)]
    at_10 = {i for i in ids if routes_to_candidate(i, share=0.1)}
    at_50 = {i for i in ids if routes_to_candidate(i, share=0.5)}
    assert at_10 < at_50
    assert not any(routes_to_candidate(i, share=0.0) for i in ids)
    assert all(routes_to_candidate(i, share=1.0) for i in ids)


# -- schedule and params


def test_each_mode_has_its_schedule():
    canary = (Step(0.1, False), Step(0.5, False), Step(1.0, False))
    assert schedule(PARAMS) == canary
    assert schedule(dataclasses.replace(PARAMS, mode="shadow")) == (Step(0.0, True), *canary)
    assert schedule(dataclasses.replace(PARAMS, mode="direct")) == (Step(1.0, False),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "blue_green"}, "serving.mode"),
        ({"canary_steps": [0.5, 0.1, 1.0]}, "canary_steps"),
        ({"canary_steps": [0.1, 0.5]}, "ending"),
        ({"canary_steps": [0.0, 1.0]}, "canary_steps"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"min_agreement": 2}, "min_agreement"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"typo": 1}, "unknown key"),
    ],
)
def test_bad_serving_params_fail_at_load_with_the_key(change: dict, message: str):
    import yaml

    from ml_assets_tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["serving"].update(change)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_the_repo_params_parse_and_serving_is_optional():
    import yaml

    from ml_assets_tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert parse_params(raw).serving.canary_steps == (0.1, 0.5, 1.0)
    del raw["serving"]
    assert parse_params(raw).serving == ServingParams()


# -- guardrails and decisions


def test_a_step_holds_until_it_lasted_long_enough_with_enough_requests():
    decision = judge(PARAMS, step=0, elapsed_seconds=5, candidate=window(ok=200), stable=window(ok=2000))
    assert decision.action == "hold"
    decision = judge(PARAMS, step=0, elapsed_seconds=60, candidate=window(ok=99), stable=window(ok=2000))
    assert decision.action == "hold"


def test_a_step_that_passed_widens_and_the_last_one_promotes():
    good = {"candidate": window(ok=100), "stable": window(ok=900)}
    assert judge(PARAMS, step=0, elapsed_seconds=10, **good).action == "widen"
    assert judge(PARAMS, step=1, elapsed_seconds=10, **good).action == "promote"
    shadow = dataclasses.replace(PARAMS, mode="shadow")
    assert judge(shadow, step=0, elapsed_seconds=10, agreement=Agreement(), **good).action == "widen"


def test_the_error_rate_at_the_bound_holds_and_above_it_rolls_back():
    at = judge(PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=98, errors=2), stable=window(ok=900))
    assert at.action == "widen"
    above = judge(PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=97, errors=3), stable=window(ok=900))
    assert above.action == "rollback"
    assert "error_rate 0.03 beyond bound 0.02" in above.reason


def test_errors_that_cross_the_bound_whatever_follows_roll_back_before_the_minimum_sample():
    # 3 errors in 5 requests: even 95 successes after them would leave 3% > 2%
    early = judge(PARAMS, step=0, elapsed_seconds=1, candidate=window(ok=2, errors=3), stable=window(ok=50))
    assert early.action == "rollback"
    # 2 errors in 5 requests could still end at 2%: wait
    wait = judge(PARAMS, step=0, elapsed_seconds=1, candidate=window(ok=3, errors=2), stable=window(ok=50))
    assert wait.action == "hold"


def test_extra_rejections_compared_with_stable_roll_back():
    # the candidate rejects (4xx) what stable accepts: a changed signature
    decision = judge(PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=90, rejected=10), stable=window(ok=900))
    assert decision.action == "rollback" and "rejection_rate" in decision.reason
    # the same share of bad requests on both sides is the clients' fault, not the candidate's
    same = judge(
        PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=90, rejected=10), stable=window(ok=900, rejected=100)
    )
    assert same.action == "widen"


def test_the_p99_latency_ratio_at_the_bound_holds_and_above_it_rolls_back():
    stable = window(ok=500, seconds=0.010)
    at = judge(PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=100, seconds=0.020), stable=stable)
    assert at.action == "widen"
    slow = judge(PARAMS, step=0, elapsed_seconds=10, candidate=window(ok=100, seconds=0.021), stable=stable)
    assert slow.action == "rollback" and "p99_latency_ratio 2.1 beyond bound 2.0" in slow.reason


def test_low_agreement_rolls_back_only_when_a_bound_is_set():
    agreement = Agreement()
    for _ in range(100):
        agreement.add({"predictions": [[0.9, 0.1]]}, {"predictions": [[0.2, 0.8]]})
    args = {"step": 0, "elapsed_seconds": 10, "candidate": window(ok=100), "stable": window(ok=100)}
    shadow = dataclasses.replace(PARAMS, mode="shadow")
    assert judge(shadow, agreement=agreement, **args).action == "widen"
    bounded = dataclasses.replace(shadow, min_agreement=0.9)
    decision = judge(bounded, agreement=agreement, **args)
    assert decision.action == "rollback" and "agreement 0.0 beyond bound 0.9" in decision.reason


# -- counters


def test_agreement_compares_classes_scores_and_labels():
    a = Agreement()
    a.add({"predictions": [[0.9, 0.1], [0.4, 0.6]]}, {"predictions": [[0.7, 0.3], [0.6, 0.4]]})
    assert (a.rows, a.agreeing) == (2, 1)
    assert a.mean_abs_diff == pytest.approx((0.2 + 0.2 + 0.2 + 0.2) / 4)
    a.add({"predictions": ["yes", "no"]}, {"predictions": ["yes", "yes"]})
    assert (a.rows, a.agreeing) == (4, 2)
    a.add({"predictions": [1, 0]}, {"predictions": [1]})
    a.add({"error": "x"}, {"predictions": [1]})
    assert a.skipped == 2 and a.rate == 0.5


def test_a_window_keeps_a_bounded_number_of_latencies_and_counts_statuses():
    w = VersionWindow(size=100)
    for i in range(1000):
        w.record(status=200 if i % 10 else 503, seconds=i / 1000)
    assert len(w.latencies) == 100
    assert (w.requests, w.errors, w.error_rate) == (1000, 100, 0.1)
    assert w.quantile(0.5) == pytest.approx(0.9495)
    assert VersionWindow().quantile(0.99) is None


def test_the_report_metadata_is_flat_and_machine_readable():
    report = StepReport(
        verdict="rolled_back",
        reason="error_rate 0.5 beyond bound 0.02",
        model_name="churn_classifier",
        mode="canary",
        stable_version="1",
        candidate_version="2",
        step=0,
        steps=3,
        share=0.0,
        shadow=False,
        elapsed_seconds=3.2,
        stable=window(ok=90),
        candidate=window(ok=5, errors=5),
        agreement=None,
    )
    metadata = report.metadata()
    assert metadata["verdict"] == "rolled_back" and metadata["candidate_version"] == "2"
    assert metadata["candidate_error_rate"] == 0.5 and metadata["stable_share"] == 1.0
    assert metadata["candidate_p99_ms"] == pytest.approx(10.0)
    assert all(isinstance(v, str | int | float | bool) for v in metadata.values())
