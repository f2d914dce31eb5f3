from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.lib import config as C
from ml_assets.lib import snapshot as S
from ml_assets.lib import training as T

REPO = Path(__file__).resolve().parents[2]


def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repo_params_parse():
    params = C.load_params(REPO / "params.yaml")
    assert len(params.training.candidates) >= 3
    assert params.training.candidate("random_forest").estimator.endswith("RandomForestClassifier")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("gates"), "`gates`"),
        (lambda r: r["gates"].update(typo=1), "unknown key"),
        (lambda r: r["training"].update(selection_metric="mse"), "selection_metric"),
        (lambda r: r["split"].update(test_size=0.9), "split"),
        (lambda r: r["training"].update(candidates={}), "candidates"),
    ],
)
def test_bad_params_fail_with_the_key(change, message):
    r = raw()
    change(r)
    with pytest.raises(C.ParamsError, match=message):
        C.parse_params(r)


def test_section_hash_changes_only_with_its_section():
    a = C.parse_params(raw())
    r = raw()
    r["gates"]["min_f1"] = 0.1
    b = C.parse_params(r)
    assert a.section_hash("split") == b.section_hash("split")
    assert a.section_hash("gates") != b.section_hash("gates")


def test_union_keeps_each_row_once_in_name_order():
    one = pd.DataFrame({"a": [1, 2], "y": [0, 1]})
    two = pd.DataFrame({"a": [2, 3], "y": [1, 0]})
    snap = S.union_batches({"b2": two, "b1": one})
    assert snap.frame["a"].tolist() == [1, 2, 3]
    assert snap.frame["_batch"].tolist() == ["b1", "b1", "b2"]
    assert snap.validated_rows == {"b1": 2, "b2": 2} and snap.duplicates_dropped == {"b1": 0, "b2": 1}
    with pytest.raises(ValueError, match="no labelled validated batches"):
        S.union_batches({})


def test_snapshot_bytes_depend_only_on_content(tmp_path: Path):
    folder = tmp_path / "validated"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_parquet(folder / "b1.csv.parquet")
    S.build_snapshot(folder, tmp_path / "s1.parquet")
    S.build_snapshot(folder, tmp_path / "s2.parquet")
    assert (tmp_path / "s1.parquet").read_bytes() == (tmp_path / "s2.parquet").read_bytes()


def test_unreadable_batch_names_the_file(tmp_path: Path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=r"`x\.json`.*unsupported"):
        S.read_landed_batch(bad)


def test_build_estimator_seeds_and_reports_bad_specs():
    spec = C.CandidateSpec("rf", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5})
    assert T.build_estimator(spec, seed=3).random_state == 3
    with pytest.raises(ValueError, match="cannot be imported"):
        T.build_estimator(C.CandidateSpec("x", "sklearn.nope.Model", {}), seed=0)
    with pytest.raises(ValueError, match="do not fit"):
        T.build_estimator(C.CandidateSpec("x", "sklearn.ensemble.RandomForestClassifier", {"bogus": 1}), seed=0)


def test_pick_best_by_metric_with_stable_ties():
    def cand(name: str, auc: float) -> T.CandidateModel:
        return T.CandidateModel(name, None, "r", "u", "f", {"roc_auc": auc}, False)

    assert T.pick_best([cand("b", 0.8), cand("a", 0.8), cand("c", 0.7)], metric="roc_auc").name == "a"
    assert T.pick_best([cand("b", 0.9), cand("a", 0.8)], metric="roc_auc").name == "b"
    with pytest.raises(ValueError, match="no validation metric"):
        T.pick_best([cand("a", 0.8)], metric="f1")
