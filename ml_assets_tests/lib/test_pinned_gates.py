"""Gate verdicts on the demo data, pinned: refactors of `lib/` must give the same decisions and the same numbers.

The models are fixed here (not read from `training:` in params.yaml), so a change to the training
search does not move the pin; a change to evaluation, comparison or gates does. Regenerate the
file deliberately with `PIN_GATES=1 pytest ml_assets_tests/lib/test_pinned_gates.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.lib import evaluation as E
from ml_assets.lib import gates as G
from ml_assets.lib.config import CandidateSpec
from ml_assets.lib.demo_data import generate_batch
from ml_assets.lib.features import fit_preprocessor, infer_feature_spec, split_dataset
from ml_assets.lib.training import train_candidate

PIN = Path(__file__).with_name("pinned_gates.json")
MODELS = {
    "strong": CandidateSpec("strong", "sklearn.linear_model.LogisticRegression", {"C": 1.0, "max_iter": 1000}),
    "shallow": CandidateSpec("shallow", "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2}),
}


def verdicts() -> dict:
    frames = [generate_batch(n_rows=1200, seed=7 + i, batch_date=dt.date(2026, 11, 1 + i)) for i in range(4)]
    data = pd.concat(frames, ignore_index=True)
    spec = infer_feature_spec(data, target="churned", id_columns=["customer_id"])
    split = split_dataset(
        data, target="churned", test_size=0.2, validation_size=0.2, seed=42, id_columns=["customer_id"]
    )
    pre = fit_preprocessor(split.train, spec)
    models = {
        name: train_candidate(split.train, preprocessor=pre, spec=s, features=spec, seed=42)
        for name, s in MODELS.items()
    }
    out = {}
    for candidate, champion in (("strong", None), ("shallow", "strong"), ("strong", "shallow"), ("strong", "strong")):
        evaluation = E.evaluate_candidate(
            models[candidate],
            train=split.train,
            holdout=split.test,
            features=spec.features,
            target="churned",
            champion=models[champion] if champion else None,
            champion_version="1" if champion else None,
            bootstrap_samples=300,
            confidence=0.95,
            latency_samples=20,
            seed=42,
        )
        results = {
            "min_roc_auc": G.meets_minimum("roc_auc", evaluation.metrics.roc_auc, minimum=0.7),
            "min_f1": G.meets_minimum("f1", evaluation.metrics.f1, minimum=0.4),
            "baseline": G.beats_baseline(
                "roc_auc", evaluation.metrics.roc_auc, baseline=evaluation.baseline.roc_auc, margin=0.05
            ),
            "non_inferior": G.non_inferior(evaluation.comparison, margin=0.025, min_power=0.9),
            "classes": G.predicts_every_class(evaluation.shares, min_share=0.02),
        }
        out[f"{candidate} vs {champion or 'none'}"] = {
            name: {"passed": r.passed, **{k: v for k, v in r.observed.items() if isinstance(v, float | int)}}
            for name, r in results.items()
        }
    return out


def test_gate_verdicts_on_the_demo_data_are_pinned():
    observed = json.loads(json.dumps(verdicts()))
    if os.environ.get("PIN_GATES"):
        PIN.write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PIN.read_text())
    assert observed.keys() == pinned.keys()
    for case, gates in pinned.items():
        for gate, values in gates.items():
            assert observed[case][gate]["passed"] is values["passed"], (case, gate)
            for key, value in values.items():
                assert observed[case][gate][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (case, gate, key)
