"""The batch checks run the `gx/` checkpoint and link its Data Docs page over HTTP; the drift table tells the truth."""

from __future__ import annotations

import urllib.parse

import dagster as dg
import pytest

from ml_assets.defs.monitoring import _feature_table
from ml_assets.lib.drift import DriftReport, FeatureDrift
from ml_assets.lib.validation import data_docs_dir
from ml_assets_tests.conftest import Project
from ml_assets_tests.graph import materialize

BASE = "http://docs.example:8123/gx/"


def test_every_batch_check_links_the_data_docs_page_of_its_validation(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_ASSETS_DATA_DOCS_URL", BASE)
    [batch] = project.land(batches=1, rows=400, bad="unknown_category")
    project.instance.add_dynamic_partitions("landing_batches", [batch.name])
    result = materialize(project, dg.AssetSelection.assets("landed_batch"), partition_key=batch.name)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {name for name, e in evaluations.items() if not e.passed} == {"categorical_domains"}
    links = {e.metadata["data_docs"].value for e in evaluations.values()}
    [link] = links  # one checkpoint run, one page, linked from all seven checks
    assert isinstance(evaluations["row_count"].metadata["data_docs"], dg.UrlMetadataValue)
    assert link.startswith(f"{BASE}validations/landed_batch/{batch.name}/")
    page = data_docs_dir(project.root) / urllib.parse.unquote(link.removeprefix(BASE))
    assert page.is_file() and batch.name in page.read_text()
    assert not (project.root / "data" / "reports").exists()  # no report of our own any more


def test_drift_table_prints_p_values_as_the_summary_does() -> None:
    tiny = FeatureDrift("tenure", "numeric", "kolmogorov_smirnov", 0.4, 1e-35, 9.1e-33, 0.41, True)
    plain = FeatureDrift("plan", "categorical", "chi_square", 3.2, 0.2, 0.43, 0.01, False)
    report = DriftReport("drift", True, (tiny, plain), 4800, 1200, 0.05, 0.2, "benjamini_hochberg", 200)
    table = _feature_table(report)
    assert [c.name for c in table.schema.columns] == ["feature", "psi", "p_value", "adj_p_value", "drifted"]
    rows = [r.data for r in table.records]
    assert rows[0] == {"feature": "tenure", "psi": 0.41, "p_value": "1e-35", "adj_p_value": "9.1e-33", "drifted": True}
    assert rows[1]["adj_p_value"] == "0.43"
    assert "adj. p 9.1e-33" in report.summary()
