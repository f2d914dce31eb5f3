"""Pinned decisions on the demo data: a refactor of drift or validation must not change a verdict.

`pinned_decisions.json` was recorded with the code as it was before `lib/drift.py` and
`lib/validation.py` moved onto scipy and a file-backed GX project. It holds, per demo batch:

* the drift report against the params.yaml demo data (both corrections): status, drifted
  features, and each feature's statistic, raw and adjusted p-value and PSI (compared to 1e-9
  relative);
* the verdict of each of the seven blocking batch checks, read from the Dagster check
  evaluations (the public contract), against the committed suite.

Record it again (`python -m ml_assets_tests.lib.test_pinned_decisions`) only when a change of
decision is deliberate, and say so in the commit.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml_assets.lib import demo_data as dd

PINNED = Path(__file__).with_name("pinned_decisions.json")
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "age", "support_calls"]
CATEGORICAL = ["contract", "payment_method", "internet_service", "region"]
RULE = {"alpha": 0.05, "psi_threshold": 0.2, "min_samples": 200, "bins": 10}  # params.yaml `drift`
DAY = dt.date(2026, 12, 1)


def reference() -> pd.DataFrame:
    """Four undrifted demo batches of 1,200 rows, like the data of the first champion."""
    frames = [dd.generate_batch(n_rows=1200, seed=11 + i, batch_date=dt.date(2026, 11, 1 + i)) for i in range(4)]
    return pd.concat(frames, ignore_index=True)


def drift_batches() -> dict[str, pd.DataFrame]:
    """Validated-looking batches: clean, shifted (`make demo-data ARGS="--drift 1.0"`), label shift, tiny, corrupted."""
    clean = dd.generate_batch(n_rows=1200, seed=101, batch_date=DAY)
    return {
        "clean": clean,
        "clean_small": dd.generate_batch(n_rows=400, seed=102, batch_date=DAY),
        "drift_0.3": dd.generate_batch(n_rows=1200, seed=103, batch_date=DAY, covariate_drift=0.3),
        "drift_1.0": dd.generate_batch(n_rows=1200, seed=104, batch_date=DAY, covariate_drift=1.0),
        "label_shift_1.0": dd.generate_batch(n_rows=1200, seed=105, batch_date=DAY, label_shift=1.0),
        "too_few_rows": dd.generate_batch(n_rows=150, seed=106, batch_date=DAY, covariate_drift=1.0),
        "unknown_category": dd.corrupt_batch(clean, kind="unknown_category", seed=107),
        "null_required": dd.corrupt_batch(clean, kind="null_required", seed=108),
    }


def drift_decisions() -> dict[str, Any]:
    """The drift report of each batch, per correction."""
    from ml_assets.lib.drift import compute_drift

    ref = reference()
    out: dict[str, Any] = {}
    for name, batch in drift_batches().items():
        for correction in ("benjamini_hochberg", "bonferroni"):
            report = compute_drift(ref, batch, numeric=NUMERIC, categorical=CATEGORICAL, correction=correction, **RULE)
            out[f"{name}/{correction}"] = {
                "status": report.status,
                "drifted_features": list(report.drifted_features),
                "features": {
                    f.feature: {
                        "test": f.test,
                        "statistic": f.statistic,
                        "p_value": f.p_value,
                        "adjusted_p_value": f.adjusted_p_value,
                        "psi": f.psi,
                    }
                    for f in report.features
                },
            }
    return out


def validation_batches() -> dict[str, pd.DataFrame]:
    """Good, drifted and broken batches, one per way a batch can fail a check."""
    good = dd.generate_batch(n_rows=600, seed=201, batch_date=DAY)
    dupes = good.sample(frac=0.08, random_state=0).assign(customer_id=lambda d: d["customer_id"] + "-dup")
    out_of_range = good.copy()
    out_of_range.loc[:4, "age"] = 400
    batches = {
        "good": good,
        "drift_1.0": dd.generate_batch(n_rows=1200, seed=202, batch_date=DAY, covariate_drift=1.0),
        "label_shift_1.0": dd.generate_batch(n_rows=1200, seed=203, batch_date=DAY, label_shift=1.0),
        "duplicates": pd.concat([good, dupes], ignore_index=True),
        "too_few_rows": dd.generate_batch(n_rows=30, seed=204, batch_date=DAY),
        "single_class": good[good[dd.TARGET] == 0],
        "out_of_range": out_of_range,
        "no_region_column": good.drop(columns=["region"]),
        "unlabelled": good.drop(columns=[dd.TARGET]),
    }
    for kind in dd.BAD_BATCH_KINDS:
        batches[kind] = dd.corrupt_batch(good, kind=kind, seed=205)
    return batches


def validation_verdicts(project: Any) -> dict[str, dict[str, bool]]:
    """Land each batch as CSV, run `landed_batch` and its checks, and read each check's verdict."""
    import dagster as dg

    from ml_assets_tests.graph import materialize

    project.landing.mkdir(parents=True, exist_ok=True)
    names = []
    for name, frame in validation_batches().items():
        frame.to_csv(project.landing / f"{name}.csv", index=False)
        names.append(f"{name}.csv")
    project.instance.add_dynamic_partitions("landing_batches", names)
    verdicts: dict[str, dict[str, bool]] = {}
    for name in names:
        result = materialize(project, dg.AssetSelection.assets("landed_batch"), partition_key=name)
        evaluations = result.get_asset_check_evaluations()
        verdicts[name.removesuffix(".csv")] = {e.check_name: bool(e.passed) for e in evaluations}
    return verdicts


def _approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-300)


def test_drift_decisions_are_unchanged() -> None:
    pinned = json.loads(PINNED.read_text())["drift"]
    fresh = drift_decisions()
    assert list(fresh) == list(pinned)
    for case, expected in pinned.items():
        got = fresh[case]
        assert (got["status"], got["drifted_features"]) == (expected["status"], expected["drifted_features"]), case
        assert list(got["features"]) == list(expected["features"]), case
        for feature, values in expected["features"].items():
            for key, value in values.items():
                shown = got["features"][feature][key]
                assert shown == (value if isinstance(value, str) else _approx(value)), (case, feature, key)


def test_validation_verdicts_are_unchanged(project: Any) -> None:
    pinned = json.loads(PINNED.read_text())["validation"]
    assert validation_verdicts(project) == pinned


def _record() -> None:
    """Write `pinned_decisions.json` (validation through a throw-away project, like the test)."""
    import tempfile

    from ml_assets_tests import conftest

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        base = Path(tmp)
        template = base / "mlflow.db"
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
        conftest._new_project_files(base, template)
        with conftest._open_project(base, monkeypatch) as project:
            validation = validation_verdicts(project)
    PINNED.write_text(json.dumps({"drift": drift_decisions(), "validation": validation}, indent=1) + "\n")
    print(f"wrote {PINNED}", file=sys.stderr)


if __name__ == "__main__":
    _record()
