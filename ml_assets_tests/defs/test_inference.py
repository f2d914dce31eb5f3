"""Batch predictions: each validated batch is scored by the champion, one file per champion version."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from ml_assets.lib import tracking
from ml_assets_tests.conftest import Project
from ml_assets_tests.defs.test_graph import MODEL
from ml_assets_tests.defs.test_monitoring import output_metadata
from ml_assets_tests.graph import failed_checks, ingest, materialize, materialized


def test_each_validated_batch_is_scored_by_the_champion(trained: Project):
    [landed] = trained.land(batches=1, rows=400, seed=23, start="2027-03-01")
    result = ingest(trained, landed.name)[landed.name]
    assert result.success, failed_checks(result)
    batch = pd.read_csv(landed)
    path = trained.root / "data" / "predictions" / f"{landed.name}.v1.parquet"
    scores = pd.read_parquet(path)
    assert len(scores) == len(batch) == 400
    assert scores["customer_id"].tolist() == batch["customer_id"].astype(str).tolist()
    assert list(scores.columns) == ["customer_id", "predicted_class", "proba_0", "proba_1", "model_version"]
    assert (scores["model_version"] == 1).all()
    assert ((scores["proba_0"] + scores["proba_1"]).round(9) == 1).all()
    assert set(scores["predicted_class"]) <= {0, 1}

    meta = output_metadata(result, "predictions")
    assert meta["dagster/row_count"] == 400 and meta["champion_version"] == 1 and meta["batches_scored"] == 1
    quantiles = list(meta["probability_quantiles"].values())
    assert quantiles == sorted(quantiles) and len(quantiles) == 5
    assert sum(meta["class_shares"].values()) == pytest.approx(1.0)

    # a new champion scores the same batch into its own file; version 1's scores are kept as they were
    client = trained.mlflow_client()
    v1 = client.get_model_version(MODEL, "1")
    v2 = tracking.register_version(
        client, model_name=MODEL, model_uri=v1.source, run_id=v1.run_id, tags={}, description="same weights"
    )
    client.set_registered_model_alias(MODEL, tracking.CHAMPION, str(v2.version))
    again = materialize(trained, dg.AssetSelection.assets("predictions"), partition_key=landed.name)
    assert again.success
    assert output_metadata(again, "predictions")["champion_version"] == 2
    rescored = pd.read_parquet(trained.root / "data" / "predictions" / f"{landed.name}.v2.parquet")
    assert (rescored["model_version"] == 2).all()
    pd.testing.assert_frame_equal(pd.read_parquet(path), scores)
    pd.testing.assert_frame_equal(rescored.drop(columns="model_version"), scores.drop(columns="model_version"))


def test_without_a_champion_nothing_is_scored_and_nothing_is_green(project: Project):
    [landed] = project.land(batches=1, rows=100)
    result = ingest(project, landed.name)[landed.name]
    assert result.success, failed_checks(result)
    assert {"predictions", "live_performance", "batch_drift"}.isdisjoint(materialized(result))  # not done: not green
    assert not (project.root / "data" / "predictions").exists()


def test_a_new_champion_makes_the_automation_rescore_every_kept_batch(trained: Project):
    from ml_assets.definitions import defs

    before = dg.evaluate_automation_conditions(defs=defs, instance=trained.instance)
    client = trained.mlflow_client()
    v1 = client.get_model_version(MODEL, "1")
    v2 = tracking.register_version(
        client, model_name=MODEL, model_uri=v1.source, run_id=v1.run_id, tags={}, description=""
    )
    client.set_registered_model_alias(MODEL, tracking.CHAMPION, str(v2.version))
    trained.instance.report_runless_asset_event(
        dg.AssetMaterialization("champion_model", metadata={"champion_version": 2})
    )
    tick = dg.evaluate_automation_conditions(defs=defs, instance=trained.instance, cursor=before.cursor)
    requested = set(tick.get_requested_partitions(dg.AssetKey("predictions")))
    assert requested == set(trained.instance.get_dynamic_partitions("landing_batches"))
    keys = sorted(requested)
    backfill = materialize(trained, dg.AssetSelection.assets("predictions"), partition_key=keys[0])  # one of them
    assert backfill.success
    assert (trained.root / "data" / "predictions" / f"{keys[0]}.v2.parquet").is_file()
