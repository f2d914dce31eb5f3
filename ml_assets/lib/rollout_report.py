"""One rollout step as the serving proxy reports it to Dagster, and a guardrail read back from that report.

The proxy posts `StepReport.metadata()` as a materialization of the `rollout` asset (see
`ml_assets/serving/reporting.py`); the `rollout` asset checks read each guardrail back with
`recorded_guardrail`. Pure logic, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_assets.lib.rollout import Agreement, Guardrail, VersionWindow


@dataclass(frozen=True)
class StepReport:
    """One rollout event, as the proxy reports it to Dagster and serves it on `GET /rollout`."""

    verdict: str
    reason: str
    model_name: str
    mode: str
    stable_version: str | None
    candidate_version: str | None
    step: int
    steps: int
    share: float
    shadow: bool
    elapsed_seconds: float
    stable: VersionWindow
    candidate: VersionWindow | None
    agreement: Agreement | None
    guardrails: Sequence[Guardrail] = ()

    def metadata(self) -> dict[str, Any]:
        """Flat JSON metadata (numbers stay numbers, so the UI plots them over time); absent values are left out.

        Returns:
            `verdict`, `reason`, `candidate_version` and `stable_version` (machine-readable for a sensor),
            the traffic split, and counters and latencies per version.
        """
        values: dict[str, Any] = {
            "verdict": self.verdict,
            "reason": self.reason,
            "model_name": self.model_name,
            "mode": self.mode,
            "stable_version": self.stable_version,
            "candidate_version": self.candidate_version,
            "step": self.step + 1 if self.candidate_version else 0,
            "steps": self.steps,
            "candidate_share": self.share,
            "stable_share": round(1.0 - self.share, 6),
            "shadow": self.shadow,
            "step_seconds": round(self.elapsed_seconds, 3),
        }
        for label, window in (("stable", self.stable), ("candidate", self.candidate)):
            if window is None:
                continue
            values[f"{label}_requests"] = window.requests
            values[f"{label}_errors"] = window.errors
            values[f"{label}_error_rate"] = round(window.error_rate, 6)
            values[f"{label}_rejected"] = window.rejected
            for q in (0.5, 0.99):
                value = window.quantile(q)
                if value is not None:
                    values[f"{label}_p{int(q * 100)}_ms"] = round(value * 1000, 3)
        for guardrail in self.guardrails:
            values[f"guardrail_{guardrail.name}"] = guardrail.observed
            values[f"guardrail_{guardrail.name}_bound"] = guardrail.bound
            values[f"guardrail_{guardrail.name}_passed"] = guardrail.passed
        if self.agreement is not None:
            values["agreement"] = self.agreement.rate
            values["agreement_rows"] = self.agreement.rows
            values["shadow_skipped"] = self.agreement.skipped
            values["shadow_busy"] = self.agreement.busy
            values["mean_abs_score_diff"] = self.agreement.mean_abs_diff
        return {k: v for k, v in values.items() if v is not None}


def recorded_guardrail(metadata: Mapping[str, Any], name: str) -> Guardrail:
    """Reads one guardrail back from a step's metadata (see `StepReport.metadata`).

    Args:
        metadata: A `rollout` materialization's metadata, as plain values.
        name: One of `rollout.GUARDRAILS`.

    Returns:
        The reading; `passed` is None when that step did not judge it.
    """
    passed = metadata.get(f"guardrail_{name}_passed")
    return Guardrail(
        name=name,
        observed=metadata.get(f"guardrail_{name}"),
        bound=metadata.get(f"guardrail_{name}_bound"),
        passed=passed if isinstance(passed, bool) else None,
        detail=f"{metadata.get('verdict', 'no verdict')} of v{metadata.get('candidate_version', '?')}",
    )
