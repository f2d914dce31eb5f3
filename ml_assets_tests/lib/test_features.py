import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import features as F


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "x": rng.normal(size=n),
            "k": rng.choice(["a", "b", None], size=n),
            "n": rng.integers(0, 5, size=n),
            "y": (rng.random(n) < 0.2).astype(int),
            "_batch": "b1",
        }
    )


def test_spec_infers_roles_and_skips_target_ids_and_lineage():
    spec = F.infer_feature_spec(frame(), target="y", id_columns=["customer_id"])
    assert spec.numeric == ("x", "n")
    assert spec.categorical == ("k",)
    assert "y" not in spec.features and "_batch" not in spec.features


def test_spec_overrides_and_errors():
    spec = F.infer_feature_spec(frame(), target="y", id_columns=["customer_id"], feature_types={"n": "categorical"})
    assert spec.categorical == ("k", "n")
    with pytest.raises(ValueError, match="`missing`"):
        F.infer_feature_spec(frame(), target="missing")
    with pytest.raises(ValueError, match="feature_types"):
        F.infer_feature_spec(frame(), target="y", feature_types={"nope": "numeric"})


def test_split_is_deterministic_disjoint_and_stratified():
    df = frame(1000)
    a = F.split_dataset(df, target="y", test_size=0.2, validation_size=0.25, seed=1, id_columns=["customer_id"])
    b = F.split_dataset(df, target="y", test_size=0.2, validation_size=0.25, seed=1, id_columns=["customer_id"])
    pd.testing.assert_frame_equal(a.test, b.test)
    ids = [set(p["customer_id"]) for p in (a.train, a.validation, a.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(len(s) for s in ids) == len(df)
    for label, count in df["y"].value_counts().items():
        assert abs((a.test["y"] == label).sum() - count * 0.2) <= 1
        assert abs((a.validation["y"] == label).sum() - count * 0.25) <= 1


def test_split_depends_on_seed_and_is_stable_as_data_grows():
    df = frame(1000)
    base = F.split_dataset(df, target="y", test_size=0.2, validation_size=0.2, seed=1, id_columns=["customer_id"])
    other = F.split_dataset(df, target="y", test_size=0.2, validation_size=0.2, seed=2, id_columns=["customer_id"])
    assert set(base.test["customer_id"]) != set(other.test["customer_id"])
    grown = pd.concat([df, frame(1000, seed=5).assign(customer_id=lambda d: "new" + d["customer_id"])])
    after = F.split_dataset(grown, target="y", test_size=0.2, validation_size=0.2, seed=1, id_columns=["customer_id"])
    kept = set(base.test["customer_id"]) & set(after.test["customer_id"])
    assert len(kept) / len(base.test) > 0.8  # old holdout rows mostly stay in the holdout


def test_preprocessor_fits_on_train_and_outputs_finite_values_even_for_unseen_categories():
    df = frame()
    spec = F.infer_feature_spec(df, target="y", id_columns=["customer_id"])
    pre = F.fit_preprocessor(df, spec)
    unseen = df.head(5).assign(k="zzz", x=np.nan)
    assert F.count_non_finite(pre.transform(unseen[list(spec.features)])) == 0
    assert F.count_non_finite(np.array([[1.0, np.inf, np.nan]])) == 2


def test_leakage_detects_target_copy_and_row_overlap():
    df = frame(600).assign(leak=lambda d: d["y"] * 10.0)
    spec = F.infer_feature_spec(df, target="y", id_columns=["customer_id"])
    split = F.split_dataset(df, target="y", test_size=0.2, validation_size=0.2, seed=0, id_columns=["customer_id"])
    report = F.find_leakage(split, spec, id_columns=["customer_id"])
    assert "leak" in report.suspicious_features and report.leaks
    clean = F.find_leakage(
        F.split_dataset(frame(600), target="y", test_size=0.2, validation_size=0.2, seed=0, id_columns=["customer_id"]),
        F.infer_feature_spec(frame(600), target="y", id_columns=["customer_id"]),
        id_columns=["customer_id"],
    )
    assert not clean.leaks
    overlapping = F.DatasetSplit(train=split.train, validation=split.validation, test=split.train.head(3))
    assert F.find_leakage(overlapping, spec, id_columns=["customer_id"]).overlapping_rows == 3
