"""Rolling a new champion out behind the serving proxy: traffic split, step schedule, guardrails, counters.

Pure logic, no I/O: `ml_assets/serving` calls it per request (`routes_to_candidate`) and a few times a second
(`judge`), and reports each step with `rollout_report.py`. The vocabulary follows KServe and SageMaker
deployment guardrails:

- **stable**: the version every client got before the alias moved; it keeps answering until the end.
- **candidate**: the version `@champion` points at now; it earns traffic step by step.
- **shadow** step: every request is also sent to the candidate, whose answer is only compared.
- **canary** step: a share of requests, chosen by request id, is answered by the candidate.
- A step ends when it lasted `step_seconds` and the candidate answered `min_requests_per_step`
  requests in it; the next step widens the share; reaching 1.0 promotes the candidate.
- Any guardrail crossed during a step rolls the candidate back: traffic returns to stable.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ml_assets.lib.config import ServingParams

Action = Literal["hold", "widen", "promote", "rollback"]
REQUEST_ID_HEADER = "X-Request-Id"
_BUCKETS = 2**64


# -- traffic split ------------------------------------------------------------------------------------------------


def request_id_for(header: str | None, body: bytes) -> str:
    """Returns the id a request is routed by: its `X-Request-Id` header, or else a hash of its body.

    Args:
        header: The `X-Request-Id` header's value, if the client sent one.
        body: The request body (identical bodies always reach the same version).

    Returns:
        The routing id.
    """
    if header and header.strip():
        return header.strip()
    return "body-" + hashlib.blake2b(body, digest_size=16).hexdigest()


def bucket(request_id: str) -> float:
    """Maps a request id to a uniform number in [0, 1), the same on every machine and every run.

    Args:
        request_id: The routing id (see `request_id_for`).

    Returns:
        The id's position in [0, 1).
    """
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


def routes_to_candidate(request_id: str, *, share: float) -> bool:
    """Tells whether a request goes to the candidate when it has `share` of the traffic.

    An id below the share stays below every wider share, so a client that saw the candidate keeps
    seeing it while the rollout widens.

    Args:
        request_id: The routing id.
        share: The candidate's share of traffic in [0, 1].

    Returns:
        True for the candidate, False for stable.
    """
    return share > 0 and bucket(request_id) < share


# -- the schedule -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a rollout: the candidate's share of live traffic, and whether it sees every request mirrored."""

    share: float
    shadow: bool


def schedule(params: ServingParams) -> tuple[Step, ...]:
    """Returns the steps a new version goes through; its last step (share 1.0) means promoted.

    Args:
        params: The `serving:` section of `params.yaml`.

    Returns:
        `direct`: only 1.0. `canary`: the canary steps. `shadow`: a mirrored step at 0.0, then the canary steps.
    """
    canary = tuple(Step(share=share, shadow=False) for share in params.canary_steps)
    if params.mode == "direct":
        return (Step(share=1.0, shadow=False),)
    if params.mode == "shadow":
        return (Step(share=0.0, shadow=True), *canary)
    return canary


# -- counters -----------------------------------------------------------------------------------------------------


@dataclass
class VersionWindow:
    """What one version did during one step; latencies keep only the last `size` samples (bounded memory)."""

    size: int = 10_000
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    latencies: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.latencies = deque(self.latencies, maxlen=self.size)

    def record(self, *, status: int, seconds: float) -> None:
        """Counts one answer: 5xx (including timeouts and refused connections) is an error, 4xx a rejection.

        Args:
            status: The HTTP status the client got (or would have got, for a mirrored request).
            seconds: Time from sending the request to the end of the answer.
        """
        self.requests += 1
        if status >= 500:
            self.errors += 1
        elif status >= 400:
            self.rejected += 1
        self.latencies.append(seconds)

    @property
    def error_rate(self) -> float:
        """Errors per request (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rejection_rate(self) -> float:
        """4xx answers per request (0 without requests)."""
        return self.rejected / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """The `q` quantile of the kept latencies in seconds, None without any."""
        if not self.latencies:
            return None
        return float(np.quantile(np.fromiter(self.latencies, dtype=float, count=len(self.latencies)), q))


@dataclass
class Agreement:
    """How often the candidate predicted what stable predicted, over the rows both answered (shadow steps).

    `skipped` counts pairs that could not be compared (a failed or unparsable answer), `busy` the
    requests not mirrored because `shadow_max_in_flight` mirrored requests were already waiting.
    """

    rows: int = 0
    agreeing: int = 0
    compared: int = 0
    skipped: int = 0
    busy: int = 0
    abs_diff_sum: float = 0.0
    abs_diff_count: int = 0

    @property
    def rate(self) -> float | None:
        """Agreeing rows per compared row, None before any."""
        return self.agreeing / self.rows if self.rows else None

    @property
    def mean_abs_diff(self) -> float | None:
        """Mean absolute difference of numeric scores, None before any."""
        return self.abs_diff_sum / self.abs_diff_count if self.abs_diff_count else None

    def add(self, stable: Any, candidate: Any) -> None:
        """Compares two MLflow scoring answers (`{"predictions": [...]}`) row by row and counts.

        Rows that hold score vectors agree when their argmax does (the predicted class); scalar rows
        agree when equal. Answers of different lengths or shapes are counted in `skipped`.

        Args:
            stable: Stable's parsed JSON answer.
            candidate: The candidate's parsed JSON answer to the same request.
        """
        a, b = _predictions(stable), _predictions(candidate)
        if a is None or b is None or len(a) != len(b):
            self.skipped += 1
            return
        try:
            left, right = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        except (TypeError, ValueError):  # labels that are strings
            self.compared += 1
            self.rows += len(a)
            self.agreeing += sum(x == y for x, y in zip(a, b, strict=True))
            return
        if left.shape != right.shape or left.ndim not in (1, 2):
            self.skipped += 1
            return
        self.compared += 1
        self.rows += len(left)
        same = left.argmax(axis=1) == right.argmax(axis=1) if left.ndim == 2 else left == right
        self.agreeing += int(same.sum())
        self.abs_diff_sum += float(np.abs(left - right).sum())
        self.abs_diff_count += left.size


def _predictions(answer: Any) -> list[Any] | None:
    if isinstance(answer, dict):
        answer = answer.get("predictions")
    return answer if isinstance(answer, list) else None


# -- the guardrails -----------------------------------------------------------------------------------------------


GUARDRAILS = ("error_rate", "rejection_rate", "p99_latency_ratio", "agreement")
"""The guardrails `guardrails` reads, in its order (`agreement` in shadow steps only)."""


@dataclass(frozen=True)
class Guardrail:
    """One guardrail's reading: the observed value, its bound and whether it holds (None: not judged yet)."""

    name: str
    observed: float | None
    bound: float | None
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Decision:
    """What the rollout does next and why."""

    action: Action
    reason: str
    guardrails: tuple[Guardrail, ...]


def guardrails(
    params: ServingParams, *, candidate: VersionWindow, stable: VersionWindow, agreement: Agreement | None
) -> tuple[Guardrail, ...]:
    """Reads every guardrail of a step.

    The error rate is judged from the first request on, against `max(requests, min_requests_per_step)`:
    errors that would cross the bound even if the rest of the minimum sample succeeded roll back at
    once, so few clients see them; the latency ratio and agreement wait for the minimum sample.

    Args:
        params: The `serving:` section.
        candidate: The candidate's counters in this step.
        stable: Stable's counters in this step.
        agreement: Prediction agreement in a shadow step, else None.

    Returns:
        `error_rate`, `rejection_rate`, `p99_latency_ratio` and, in shadow steps, `agreement`.
    """
    n = max(candidate.requests, params.min_requests_per_step)
    sampled = candidate.requests >= params.min_requests_per_step

    def held(rate: float) -> bool | None:
        """Judged once sampled, or at once when the rest of the minimum sample could not bring it back."""
        return rate <= params.max_error_rate if sampled or rate > params.max_error_rate else None

    readings = [
        Guardrail(
            name="error_rate",
            observed=round(candidate.error_rate, 6),
            bound=params.max_error_rate,
            passed=held(candidate.errors / n),
            detail=f"{candidate.errors} of {candidate.requests} requests failed (5xx or timeout)",
        ),
        Guardrail(
            name="rejection_rate",
            observed=round(candidate.rejection_rate, 6),
            bound=round(stable.rejection_rate + params.max_error_rate, 6),
            passed=held(candidate.rejected / n - stable.rejection_rate),
            detail=f"{candidate.rejected} of {candidate.requests} requests rejected (4xx); "
            f"stable rejected {stable.rejected} of {stable.requests}",
        ),
    ]
    p99_candidate, p99_stable = candidate.quantile(0.99), stable.quantile(0.99)
    ratio = None
    if sampled and stable.requests >= params.min_requests_per_step and p99_candidate and p99_stable:
        ratio = p99_candidate / p99_stable
    readings.append(
        Guardrail(
            name="p99_latency_ratio",
            observed=round(ratio, 4) if ratio is not None else None,
            bound=params.max_p99_latency_ratio,
            passed=ratio <= params.max_p99_latency_ratio if ratio is not None else None,
            detail=f"p99 {_ms(p99_candidate)} vs stable {_ms(p99_stable)}",
        )
    )
    if agreement is not None:
        rate, bound = agreement.rate, params.min_agreement
        passed = None
        if bound is not None and rate is not None and agreement.compared >= params.min_requests_per_step:
            passed = rate >= bound
        readings.append(
            Guardrail(
                name="agreement",
                observed=round(rate, 6) if rate is not None else None,
                bound=bound,
                passed=passed,
                detail=f"{agreement.agreeing} of {agreement.rows} rows predicted alike",
            )
        )
    return tuple(readings)


def judge(
    params: ServingParams,
    *,
    step: int,
    elapsed_seconds: float,
    candidate: VersionWindow,
    stable: VersionWindow,
    agreement: Agreement | None = None,
) -> Decision:
    """Decides what the rollout does after a look at the current step.

    Args:
        params: The `serving:` section.
        step: The index of the current step in `schedule(params)`.
        elapsed_seconds: How long the current step has lasted.
        candidate: The candidate's counters in this step.
        stable: Stable's counters in this step.
        agreement: Prediction agreement in a shadow step, else None.

    Returns:
        `rollback` when a guardrail failed; `widen` or `promote` when the step lasted long enough with
        enough requests and every guardrail held; otherwise `hold`.
    """
    readings = guardrails(params, candidate=candidate, stable=stable, agreement=agreement)
    failed = [g for g in readings if g.passed is False]
    if failed:
        reason = "; ".join(f"{g.name} {g.observed} beyond bound {g.bound} ({g.detail})" for g in failed)
        return Decision(action="rollback", reason=reason, guardrails=readings)
    steps = schedule(params)
    if elapsed_seconds < params.step_seconds or candidate.requests < params.min_requests_per_step:
        waiting = f"{elapsed_seconds:.0f}/{params.step_seconds:.0f} s"
        return Decision(
            action="hold",
            reason=f"step {step + 1}/{len(steps)}: {waiting}, {candidate.requests}/{params.min_requests_per_step} "
            "requests",
            guardrails=readings,
        )
    following = steps[min(step + 1, len(steps) - 1)]
    if following.share >= 1.0:
        return Decision(action="promote", reason="every step passed its guardrails", guardrails=readings)
    return Decision(action="widen", reason=f"step {step + 1} passed; share {following.share:g}", guardrails=readings)


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds is not None else "n/a"
