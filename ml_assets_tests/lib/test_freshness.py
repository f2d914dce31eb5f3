"""The no-op decision of `make run`: Dagster's data and code versions, DVC and params."""

from __future__ import annotations

import pytest

from ml_assets.lib.freshness import Recorded, training_freshness

ASSETS = ("training_snapshot", "dataset_split", "trained_model", "registered_model")
CODE = {"dataset_split": "1-a", "trained_model": "2-b", "registered_model": "1-c"}


def record(data: str, code: str | None = None, **inputs: str) -> Recorded:
    tags = {"dagster/data_version": data, **({"dagster/code_version": code} if code else {})}
    tags |= {f"dagster/input_data_version/{k}": v for k, v in inputs.items()}
    return Recorded.from_tags("run", tags, {})


def records() -> dict[str, Recorded | None]:
    snapshot = Recorded.from_tags("run", {"dagster/data_version": "md5"}, {"validated_fingerprint": "fp"})
    registered = Recorded.from_tags(
        "run",
        {"dagster/data_version": "r", "dagster/code_version": "1-c", "dagster/input_data_version/trained_model": "t"},
        {"params_hash": "ph"},
    )
    return {
        "training_snapshot": snapshot,
        "dataset_split": record("s", "1-a", training_snapshot="md5"),
        "trained_model": record("t", "2-b", dataset_split="s"),
        "registered_model": registered,
    }


def verdict(recs, **changes):
    options = {
        "assets": ASSETS,
        "code_versions": CODE,
        "validated_fingerprint": "fp",
        "snapshot_md5_on_disk": "md5",
        "snapshot_md5_in_dvc": "md5",
        "params_hash": "ph",
    } | changes
    return training_freshness(recs, **options)


def test_unchanged_graph_is_fresh_and_says_its_data_version():
    result = verdict(records())
    assert result.fresh and "md5" in result.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r, o: o.update(validated_fingerprint="new"), "validated batches changed"),
        (lambda r, o: o.update(snapshot_md5_on_disk=None), "snapshot file"),
        (lambda r, o: o.update(snapshot_md5_in_dvc="other"), "dvc.lock"),
        (lambda r, o: o.update(code_versions=CODE | {"trained_model": "3-b"}), "`trained_model`: code version"),
        (lambda r, o: r.update(trained_model=record("t", "2-b", dataset_split="older")), "older `dataset_split`"),
        (lambda r, o: r.update(registered_model=None), "`registered_model` was never"),
        (lambda r, o: r.update(training_snapshot=None), "never materialized"),
        (lambda r, o: o.update(params_hash="edited"), "params.yaml changed"),
        (lambda r, o: r.update(registered_model=record("r", None, trained_model="t")), "code version None"),
    ],
)
def test_any_change_makes_it_stale_with_the_reason(change, reason):
    recs, options = records(), {}
    change(recs, options)
    result = verdict(recs, **options)
    assert not result.fresh and reason in result.reason
