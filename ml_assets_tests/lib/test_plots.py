"""Unit tests of `ml_assets.lib.plots`: PNG output, sizes, no pyplot state, importances."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.lib import plots as P

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 60 * 1024
ONE_PANEL = (450, 360)  # 5 x 4 inches at 90 dpi
TWO_PANELS = (810, 360)  # 9 x 4 inches at 90 dpi


def _size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always follows the signature."""
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _scores(n: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(["stay", "churn"], n, p=[0.75, 0.25])
    scores = np.clip(rng.normal(0.3 + 0.35 * (y == "churn"), 0.2), 0.0, 1.0)
    return y, scores


def _drift_records(n: int = 10, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    records: list[dict[str, object]] = [
        {
            "feature": f"feature_{i}",
            "psi": float(abs(rng.normal(0.0, 0.08))),
            "drifted": False,
            "adjusted_p_value": float(rng.uniform()),
        }
        for i in range(n)
    ]
    records[1].update(psi=0.8, drifted=True, adjusted_p_value=1e-12)
    records[4].update(psi=0.31, drifted=True, adjusted_p_value=0.003)
    return records


def _history(n: int = 6) -> list[dict[str, object]]:
    return [
        {"version": f"v{i}", "roc_auc": 0.80 + 0.01 * i, "f1": 0.60 + 0.02 * i, "accuracy": 0.85 if i % 3 else None}
        for i in range(1, n + 1)
    ]


PLOTS: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    "confusion_matrix": (
        lambda: P.confusion_matrix_png([[1500, 80], [210, 410]], labels=["stay", "churn"]),
        ONE_PANEL,
    ),
    "roc_pr_curves": (lambda: P.roc_pr_curves_png(*_scores(), positive="churn"), TWO_PANELS),
    "feature_importance": (
        lambda: P.feature_importance_png({f"x{i}": 0.1 / (i + 1) for i in range(25)}),
        ONE_PANEL,
    ),
    "drift": (lambda: P.drift_png(_drift_records(), psi_threshold=0.2), ONE_PANEL),
    "batch_profile": (
        lambda: P.batch_profile_png({"tenure": 0.0, "charges": 0.02, "plan": 0.15}, {"stay": 0.75, "churn": 0.25}),
        TWO_PANELS,
    ),
    "metric_history": (
        lambda: P.metric_history_png(_history(), metrics=["roc_auc", "f1", "accuracy"]),
        ONE_PANEL,
    ),
}


# --- output --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PLOTS))
def test_plots_are_small_pngs_of_the_house_size(name: str) -> None:
    render, size = PLOTS[name]
    png = render()
    assert isinstance(png, bytes)
    assert png.startswith(PNG)
    assert 1_000 < len(png) < MAX_BYTES
    assert _size(png) == size


@pytest.mark.parametrize("name", list(PLOTS))
def test_plots_are_deterministic(name: str) -> None:
    render, _ = PLOTS[name]
    assert render() == render()


def test_plots_carry_no_software_metadata() -> None:
    png = PLOTS["confusion_matrix"][0]()
    assert b"matplotlib" not in png.lower() and b"Software" not in png


@pytest.mark.parametrize(
    "render",
    [
        lambda: P.confusion_matrix_png(
            np.random.default_rng(0).integers(0, 100_000, (15, 15)).tolist(),
            labels=[f"a_rather_long_class_name_{i}" for i in range(15)],
        ),
        lambda: P.confusion_matrix_png(np.ones((40, 40), dtype=int).tolist(), labels=[str(i) for i in range(40)]),
        lambda: P.roc_pr_curves_png(*_scores(100_000), positive="churn"),
        lambda: P.feature_importance_png({f"{'long_feature_name_' * 4}{i}": float(i) for i in range(200)}, top=40),
        lambda: P.drift_png(_drift_records(80), psi_threshold=0.2),
        lambda: P.batch_profile_png({f"column_{i}": i / 100 for i in range(100)}, {f"c{i}": 1 / 30 for i in range(30)}),
        lambda: P.metric_history_png(_history(60), metrics=["roc_auc", "f1", "accuracy"]),
    ],
    ids=["confusion_15", "confusion_40", "roc_100k", "importance_200", "drift_80", "profile_100", "history_60"],
)
def test_large_inputs_stay_small(render: Callable[[], bytes]) -> None:
    png = render()
    assert png.startswith(PNG) and len(png) < MAX_BYTES


def test_names_are_shown_literally_not_as_mathtext() -> None:
    names = {"cost_$_per_$": 0.3, "$x^{2}$": 0.2, r"back\slash": 0.1}
    assert P.feature_importance_png(names).startswith(PNG)
    assert P.confusion_matrix_png([[1, 2], [3, 4]], labels=["$a$", "$b_"]).startswith(PNG)
    assert P.metric_history_png([{"version": "$1$", "a$b$": 1.0}], metrics=["a$b$"]).startswith(PNG)


def test_edge_inputs_render() -> None:
    assert P.confusion_matrix_png([[0, 0], [0, 0]], labels=["a", "b"]).startswith(PNG)  # no rows at all
    assert P.confusion_matrix_png([[7]], labels=["only"]).startswith(PNG)
    assert P.feature_importance_png({"useless": -0.01, "useful": 0.2}, top=1).startswith(PNG)
    assert P.roc_pr_curves_png([0, 1], [0.5, 0.5], positive=1).startswith(PNG)  # ties, two rows
    assert P.drift_png([{"feature": "a", "psi": 0.0, "drifted": False, "adjusted_p_value": None}], psi_threshold=0.1)
    assert P.metric_history_png([{"version": 3, "auc": 0.9}], metrics=["auc"]).startswith(PNG)  # one version
    assert P.batch_profile_png({"a": 1.0}, {"only": 1.0}).startswith(PNG)


def test_roc_pr_accepts_series_lists_and_numeric_labels() -> None:
    y, scores = _scores()
    assert P.roc_pr_curves_png(pd.Series(y), list(scores), positive="churn") == P.roc_pr_curves_png(
        y, scores, positive="churn"
    )
    assert P.roc_pr_curves_png((y == "churn").astype(int), scores, positive=1).startswith(PNG)
    assert P.roc_pr_curves_png(y == "churn", -scores, positive=True).startswith(PNG)  # worse than chance


# --- markdown ------------------------------------------------------------------------------


def test_markdown_image_embeds_the_png() -> None:
    png = PLOTS["drift"][0]()
    markdown = P.as_markdown_image(png, alt="drift")
    prefix = "![drift](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix) : -1]) == png


def test_markdown_alt_text_cannot_break_the_markdown() -> None:
    markdown = P.as_markdown_image(PNG + b"rest", alt="a [b]\n c\\")
    assert markdown.startswith(r"![a \[b\] c\\](data:image/png;base64,")


# --- no global matplotlib state ------------------------------------------------------------


def _render_all() -> None:
    for render, _ in PLOTS.values():
        render()


def test_no_figure_leaks_into_pyplot() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    _render_all()
    assert plt.get_fignums() == before


def test_importing_is_cheap_and_rendering_chooses_no_backend() -> None:
    """scikit-learn's Displays import pyplot, but draw on our Agg figures: no backend, no pyplot figure."""
    code = (
        "import sys, ml_assets.lib.plots; "
        "heavy = ('matplotlib', 'sklearn', 'pandas', 'PIL', 'dagster'); "
        "print(sorted(m for m in heavy if m in sys.modules)); "
        "from ml_assets_tests.lib.test_plots import _render_all; _render_all(); "
        "import matplotlib, matplotlib.pyplot as plt; "
        "print(plt.get_fignums(), matplotlib.rcParams._get_backend_or_none())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    imported, after = out.stdout.strip().splitlines()
    assert imported == "[]"
    assert after == "[] None"


def test_concurrent_renders_match_sequential_ones() -> None:
    expected = {name: render() for name, (render, _) in PLOTS.items()}
    names = list(PLOTS) * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: PLOTS[name][0](), names))
    assert all(png == expected[name] for name, png in zip(names, results, strict=True))


# --- permutation importances ---------------------------------------------------------------


def _churn(n: int, seed: int, *, classes: tuple[str, ...] = ("no", "yes")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    edges = np.quantile(signal, np.linspace(0, 1, len(classes) + 1)[1:-1])
    label = np.searchsorted(edges, signal + rng.normal(0, 0.3, n))
    frame["target"] = np.asarray(classes)[label]
    return frame


def _pipeline(frame: pd.DataFrame, estimator: object) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    preprocess = ColumnTransformer(
        [("num", StandardScaler(), ["signal", "noise"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])]
    )
    model = Pipeline([("preprocess", preprocess), ("model", estimator)])
    return model.fit(frame[["signal", "noise", "color"]], frame["target"])


FEATURES = ["signal", "noise", "color"]


def _importances(model: object, held_out: pd.DataFrame, **options: object) -> dict[str, float]:
    from ml_assets.lib.explanations import explain_globally

    settings = {"features": FEATURES, "target": "target", "max_rows": 2000, "repeats": 3, "seed": 0} | options
    return explain_globally(model, held_out, **settings).means()  # type: ignore[arg-type]


@pytest.mark.parametrize("estimator", ["logistic", "forest"])
def test_permutation_ranks_the_informative_feature_above_noise(estimator: str) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    model = _pipeline(
        _churn(1_500, 0),
        LogisticRegression() if estimator == "logistic" else RandomForestClassifier(n_estimators=30, random_state=0),
    )
    importances = _importances(model, _churn(1_000, 1))
    assert set(importances) == set(FEATURES) and next(iter(importances)) == "signal"
    assert importances["signal"] > 0.2  # ROC AUC drops from ~0.95 towards 0.5
    assert importances["signal"] > 10 * max(abs(importances["noise"]), abs(importances["color"]), 1e-3)
    assert P.feature_importance_png(importances).startswith(PNG)


def test_permutation_is_deterministic_and_subsamples() -> None:
    from sklearn.linear_model import LogisticRegression

    model = _pipeline(_churn(1_000, 0), LogisticRegression())
    held_out = _churn(5_000, 1)
    first = _importances(model, held_out, seed=3, max_rows=500)
    assert first == _importances(model, held_out, seed=3, max_rows=500)
    assert first != _importances(model, held_out, seed=4, max_rows=500)
    assert first != _importances(model, held_out, seed=3, max_rows=5_000)  # the subsample is really a subsample


def test_permutation_scores_multiclass_models_by_one_vs_rest_roc_auc() -> None:
    from sklearn.linear_model import LogisticRegression

    from ml_assets.lib.explanations import explain_globally

    model = _pipeline(_churn(1_500, 0, classes=("low", "mid", "high")), LogisticRegression())
    held_out = _churn(1_000, 1, classes=("low", "mid", "high"))
    explanation = explain_globally(
        model, held_out, features=FEATURES, target="target", max_rows=2000, repeats=3, seed=0
    )
    importances = explanation.means()
    assert explanation.scoring == "roc_auc_ovr" and 0.1 < importances["signal"] < 0.5  # a macro AUC drop
    assert abs(importances["noise"]) < 0.05
