"""Small PNG plots for Dagster materialization metadata, and model-agnostic feature importances.

Pure functions: no Dagster. Each `*_png` function returns the bytes of a PNG; `as_markdown_image`
turns them into the `![alt](data:image/png;base64,...)` markdown that the Dagster UI shows inline.

Rendering never touches pyplot or the global backend: each plot is a `matplotlib.figure.Figure`
drawn by its own `FigureCanvasAgg`, so nothing is registered with pyplot (no figure leaks, no GUI
backend, no change to other code's matplotlib state) and the figure is freed when the function
returns. Matplotlib artists are not thread-safe, so rendering is serialized by a module lock;
separate processes need nothing. Matplotlib, Pillow and scikit-learn are imported inside the
functions, so importing this module stays cheap. The PNGs are 256-color palette images without
software-version metadata: the same input gives the same bytes on the same library versions.

Images are small (5 x 4 inches for one panel, 9 x 4 for two, at 90 dpi, tight layout), typically
5-20 KB. Text from the data (feature, label and metric names) is shown literally: a `$` does not
start matplotlib mathtext, and names longer than a panel allows are shortened with an ellipsis.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first eight bytes of every PNG file."""
DPI = 90
"""Resolution of every plot."""
SINGLE_PANEL = (5.0, 4.0)
"""Figure size in inches of a one-panel plot."""
TWO_PANELS = (9.0, 4.0)
"""Figure size in inches of a two-panel plot (side by side)."""
MAX_BARS = 20
"""Most bars a 4-inch-high panel shows legibly; longer lists show their largest values."""
MAX_ANNOTATED_CLASSES = 15
"""Largest confusion matrix whose cells get their count written in."""
MAX_CURVE_POINTS = 2000
"""Curves with more points are thinned (far more than the panel has pixels)."""

_BLUE = "#4C72B0"
_RED = "#C44E52"
_GREY = "#8C8C8C"
_LIGHT_GREY = "#B0B0B0"
_TITLE_SIZE = 11
_LABEL_SIZE = 9
_TICK_SIZE = 8
_NOTE_SIZE = 7

_RENDER_LOCK = threading.RLock()


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]],
    *,
    labels: Sequence[str],
    title: str = "Confusion matrix",
) -> bytes:
    """Render a confusion matrix as a heatmap with the count annotated in each cell.

    Rows are true classes and columns predicted classes, as `sklearn.metrics.confusion_matrix`
    returns them. The subtitle gives the number of rows and the accuracy (the diagonal's share).
    Cells are annotated up to 15 classes; beyond that the numbers would not fit and only the
    colors remain.

    Args:
        matrix: Square matrix of non-negative integer counts, one row and column per label.
        labels: Class names, in the order of the matrix rows and columns.
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: `matrix` is not a square matrix of non-negative integers, or `labels` does not
            have one name per row.

    """
    counts = _count_matrix(matrix)
    names = _labels(labels, name="labels")
    n = counts.shape[0]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} names but matrix is {n}x{n}; give one label per row")
    total = int(counts.sum())
    accuracy = f"{np.trace(counts) / total:.3f}" if total else "n/a"
    top = float(counts.max()) or 1.0

    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=top, interpolation="nearest", aspect="auto")
        if n <= MAX_ANNOTATED_CLASSES:
            size = 10 if n <= 5 else 8 if n <= 10 else 6
            for (i, j), value in np.ndenumerate(counts):
                color = "white" if value > 0.55 * top else "black"
                ax.text(j, i, f"{int(value):,}", ha="center", va="center", color=color, fontsize=size)
        ticks = [_text(label, limit=14) for label in names]
        ax.set_xticks(
            range(n), ticks, fontsize=_TICK_SIZE, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center"
        )
        ax.set_yticks(range(n), ticks, fontsize=_TICK_SIZE)
        ax.set_xlabel("Predicted", fontsize=_LABEL_SIZE)
        ax.set_ylabel("True", fontsize=_LABEL_SIZE)
        _title(ax, title, f"n = {total:,}, accuracy = {accuracy}")
        return _png(fig)


def roc_pr_curves_png(
    y_true: Sequence[Any],
    scores: Sequence[float],
    *,
    positive: Any,
    title: str = "ROC and precision-recall curves",
) -> bytes:
    """Render the ROC curve and the precision-recall curve of binary scores side by side.

    The ROC panel shows the area under the curve in its legend and the chance diagonal; the
    precision-recall panel shows the average precision in its legend and the prevalence of the
    positive class (the precision of a random ranking).

    Args:
        y_true: True labels, one per score; any values, compared to `positive`.
        scores: Scores of the positive class (probabilities or decision values), higher meaning
            more likely positive.
        positive: The label of the positive class.
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: `scores` is not finite numbers of the length of `y_true`, or `y_true` lacks
            either the positive class or any other class.

    """
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    truth = _is_positive(y_true, positive)
    values = _float_vector(scores, name="scores")
    if values.size != truth.size:
        raise ValueError(f"scores has {values.size} values but y_true has {truth.size}; give one score per label")
    if not truth.any():
        raise ValueError(f"y_true has no row of the positive class {positive!r}; check `positive`")
    if truth.all():
        raise ValueError(f"y_true has only the positive class {positive!r}; curves need negative rows too")
    fpr, tpr, _ = roc_curve(truth, values)
    precision, recall, _ = precision_recall_curve(truth, values)
    roc_auc = float(auc(fpr, tpr))
    average_precision = float(average_precision_score(truth, values))
    prevalence = float(truth.mean())

    with _figure(TWO_PANELS) as fig:
        roc, pr = fig.subplots(1, 2)
        roc.plot([0, 1], [0, 1], linestyle="--", color=_GREY, linewidth=1, label="chance")
        roc.plot(*_thin(fpr, tpr), color=_BLUE, linewidth=1.8, label=f"AUC = {roc_auc:.3f}")
        roc.set_xlabel("False positive rate", fontsize=_LABEL_SIZE)
        roc.set_ylabel("True positive rate", fontsize=_LABEL_SIZE)
        roc.set_title("ROC", fontsize=_LABEL_SIZE + 1)
        roc.legend(loc="lower right", fontsize=_TICK_SIZE)

        pr.axhline(prevalence, linestyle="--", color=_GREY, linewidth=1, label=f"prevalence = {prevalence:.3f}")
        pr.plot(
            *_thin(recall, precision),
            color=_BLUE,
            linewidth=1.8,
            drawstyle="steps-post",
            label=f"AP = {average_precision:.3f}",
        )
        pr.set_xlabel("Recall", fontsize=_LABEL_SIZE)
        pr.set_ylabel("Precision", fontsize=_LABEL_SIZE)
        pr.set_title("Precision-recall", fontsize=_LABEL_SIZE + 1)
        pr.legend(loc="lower left", fontsize=_TICK_SIZE)

        for ax in (roc, pr):
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=_TICK_SIZE)
        subtitle = f"positive class = {_text(str(positive), limit=24)}, n = {truth.size:,}"
        fig.suptitle(f"{_text(title, limit=80)}\n{subtitle}", fontsize=_TITLE_SIZE)
        return _png(fig)


def feature_importance_png(
    importances: Mapping[str, float],
    *,
    top: int = 15,
    title: str = "Feature importance",
) -> bytes:
    """Render feature importances as horizontal bars, the largest on top.

    Only the `top` largest are drawn (ties broken by name); negative importances (a permutation
    that helped the model: noise) extend left of zero in grey.

    Args:
        importances: Importance per feature name.
        top: How many features to draw, at least 1.
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: `importances` is empty or has a non-finite value, or `top` is not a positive
            integer.

    """
    _positive_int(top, name="top")
    values = _float_mapping(importances, name="importances")
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    shown = ranked[:top]
    subtitle = f"top {len(shown)} of {len(ranked)} features" if len(shown) < len(ranked) else f"{len(ranked)} features"

    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        names, heights = _bottom_up(shown)
        colors = [_BLUE if v >= 0 else _LIGHT_GREY for v in heights]
        bars = ax.barh(range(len(shown)), heights, color=colors, height=0.7)
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in heights], padding=2, fontsize=_NOTE_SIZE)
        ax.axvline(0, color=_GREY, linewidth=0.8)
        _bar_axis(ax, names, size=_bar_tick_size(len(shown)))
        ax.margins(x=0.18)
        ax.set_xlabel("Importance", fontsize=_LABEL_SIZE)
        _title(ax, title, subtitle)
        return _png(fig)


def drift_png(
    records: Sequence[Mapping[str, object]],
    *,
    psi_threshold: float,
    title: str = "Feature drift",
) -> bytes:
    """Render the PSI of each feature as horizontal bars, drifted features highlighted.

    Bars are sorted by PSI, the largest on top; drifted features are red and the others blue.
    The adjusted p-value is printed at the end of each bar and a dashed line marks
    `psi_threshold`. At most 20 features are drawn (the largest PSI; a drifted feature can only
    be left out when more than 20 have a larger PSI, and the subtitle counts all of them).

    Args:
        records: One mapping per feature with keys `feature`, `psi`, `drifted` and
            `adjusted_p_value`, e.g. `DriftReport.to_records()`.
        psi_threshold: The PSI threshold of the drift rule, positive.
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: `records` is empty, a record lacks a key or has a non-finite PSI, or
            `psi_threshold` is not a positive number.

    """
    threshold = _finite_float(psi_threshold, name="psi_threshold")
    if threshold <= 0:
        raise ValueError(f"psi_threshold must be positive, got {psi_threshold!r}")
    rows = _drift_rows(records)
    ranked = sorted(rows, key=lambda row: (-row[1], row[0]))
    shown = ranked[:MAX_BARS]
    n_drifted = sum(row[2] for row in rows)
    subtitle = f"{n_drifted} of {len(rows)} features drifted"
    if len(shown) < len(rows):
        subtitle += f"; largest {len(shown)} PSI shown"

    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        shown = shown[::-1]
        y = range(len(shown))
        bars = ax.barh(y, [row[1] for row in shown], color=[_RED if row[2] else _BLUE for row in shown], height=0.7)
        ax.bar_label(bars, labels=[_p_value(row[3]) for row in shown], padding=2, fontsize=_NOTE_SIZE)
        ax.axvline(threshold, color=_GREY, linestyle="--", linewidth=1)
        _bar_axis(ax, [row[0] for row in shown], size=_bar_tick_size(len(shown)))
        ax.set_xlim(0, max(threshold, max(row[1] for row in shown)) * 1.35)
        ax.set_xlabel("Population stability index (PSI)", fontsize=_LABEL_SIZE)
        _legend(ax, [(_RED, "drifted"), (_BLUE, "stable")], line=f"threshold = {threshold:g}")
        _title(ax, title, subtitle)
        return _png(fig)


def batch_profile_png(
    null_share: Mapping[str, float],
    class_balance: Mapping[str, float],
    *,
    title: str = "Batch profile",
) -> bytes:
    """Render the null share of each column and the class balance of a batch, side by side.

    Both panels are horizontal bars on a 0-100% axis, the largest on top; at most 20 columns
    (those with the most nulls) and 20 classes are drawn.

    Args:
        null_share: Share of missing values per column, each in [0, 1].
        class_balance: Share of rows per class of the target, each in [0, 1].
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: Either mapping is empty or has a value outside [0, 1].

    """
    nulls = _share_mapping(null_share, name="null_share")
    balance = _share_mapping(class_balance, name="class_balance")

    with _figure(TWO_PANELS) as fig:
        left, right = fig.subplots(1, 2)
        for ax, shares, heading, color in (
            (left, nulls, "Null share by column", _GREY),
            (right, balance, "Class balance", _BLUE),
        ):
            ranked = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
            shown = ranked[:MAX_BARS]
            names, heights = _bottom_up(shown)
            bars = ax.barh(range(len(shown)), heights, color=color, height=0.7)
            ax.bar_label(bars, labels=[_percent(v) for v in heights], padding=2, fontsize=_NOTE_SIZE)
            _bar_axis(ax, names, size=_bar_tick_size(len(shown)), limit=22)
            ax.set_xlim(0, 1.18)
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"], fontsize=_TICK_SIZE)
            if len(shown) < len(ranked):
                heading += f" (largest {len(shown)} of {len(ranked)})"
            ax.set_title(heading, fontsize=_LABEL_SIZE + 1)
        fig.suptitle(_text(title, limit=80), fontsize=_TITLE_SIZE)
        return _png(fig)


def metric_history_png(
    history: Sequence[Mapping[str, object]],
    *,
    metrics: Sequence[str],
    title: str = "Metrics by model version",
) -> bytes:
    """Render metrics across model versions, one line with markers per metric.

    The x axis has one tick per record, in the order given, labelled with its `version`. A
    record without a metric (or with None or NaN) leaves a gap in that metric's line.

    Args:
        history: One mapping per model version, oldest first, with key `version` and the
            metrics as numbers.
        metrics: Names of the metrics to draw, at least one.
        title: Figure title.

    Returns:
        The PNG bytes.

    Raises:
        ValueError: `history` or `metrics` is empty, a record lacks `version`, a metric value is
            not a number, or a metric has no value in any record.

    """
    names = _labels(metrics, name="metrics")
    if not names:
        raise ValueError("metrics is empty; name at least one metric to draw")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics has duplicates: {names}")
    if isinstance(history, Mapping) or not isinstance(history, Sequence) or not history:
        raise ValueError("history must be a non-empty sequence of mappings, one per model version")
    versions: list[str] = []
    series: dict[str, list[float]] = {name: [] for name in names}
    for i, record in enumerate(history):
        if not isinstance(record, Mapping) or "version" not in record:
            raise ValueError(f"history[{i}] must be a mapping with key `version`, got {record!r}")
        versions.append(str(record["version"]))
        for name in names:
            series[name].append(_optional_float(record.get(name), name=f"history[{i}][{name!r}]"))
    empty = [name for name, values in series.items() if not any(math.isfinite(v) for v in values)]
    if empty:
        raise ValueError(f"metrics {empty} have no value in any history record")

    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(versions))
        for name in names:
            ax.plot(x, series[name], marker="o", markersize=4, linewidth=1.5, label=_text(name, limit=30))
        step = max(1, math.ceil(len(versions) / 12))
        shown = [_text(v, limit=12) for v in versions[::step]]
        rotate = len(shown) * max(len(v) for v in shown) > 40
        ax.set_xticks(
            x[::step],
            shown,
            fontsize=_TICK_SIZE,
            rotation=45 if rotate else 0,
            ha="right" if rotate else "center",
        )
        ax.set_xlim(-0.5, len(versions) - 0.5)
        ax.tick_params(axis="y", labelsize=_TICK_SIZE)
        ax.set_xlabel("Model version", fontsize=_LABEL_SIZE)
        ax.set_ylabel("Value", fontsize=_LABEL_SIZE)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=_TICK_SIZE, loc="best")
        _title(ax, title, f"{len(versions)} versions")
        return _png(fig)


def as_markdown_image(png: bytes, *, alt: str) -> str:
    """Return markdown that embeds a PNG inline, for `dg.MetadataValue.md`.

    Args:
        png: The PNG bytes, e.g. from one of the `*_png` functions.
        alt: Alternative text; brackets and backslashes are escaped and line breaks flattened.

    Returns:
        `![alt](data:image/png;base64,...)`.

    Raises:
        ValueError: `png` is not the bytes of a PNG.

    """
    if not isinstance(png, bytes | bytearray) or not bytes(png).startswith(PNG_SIGNATURE):
        raise ValueError("png must be the bytes of a PNG image (they start with the PNG signature)")
    text = " ".join(str(alt).split())
    text = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    encoded = base64.b64encode(bytes(png)).decode("ascii")
    return f"![{text}](data:image/png;base64,{encoded})"


def permutation_importances(
    model: Any,
    frame: pd.DataFrame,
    y: Sequence[Any],
    *,
    features: Sequence[str],
    seed: int,
    repeats: int = 3,
    max_rows: int = 2000,
) -> dict[str, float]:
    """Return the permutation importance of each raw feature column of a fitted model.

    Model-agnostic: each column of `features` is shuffled in turn (`repeats` times) and the drop
    of the score is its importance (`sklearn.inspection.permutation_importance`, mean over the
    repeats). The model is called on raw columns, so a Pipeline `preprocess -> model` gets one
    importance per input column, whatever its encoding. The score is ROC AUC for a binary
    classifier with `predict_proba` or `decision_function`, and accuracy otherwise. Frames longer
    than `max_rows` are subsampled, without replacement and deterministically from `seed`.

    Args:
        model: A fitted classifier (or Pipeline) that predicts from `frame[features]`.
        frame: Rows to score on, e.g. the validation or test split; held-out rows, so the
            importances measure generalization.
        y: True labels, one per row of `frame`, matched by position (not by index).
        features: The feature columns of `frame`, as the model expects them.
        seed: Seed of the subsample and of the shuffles.
        repeats: Shuffles per feature, at least 1.
        max_rows: Most rows to score on, at least 2.

    Returns:
        The mean importance per feature, in the order of `features`; about 0 (possibly
        negative) for a feature the model does not use.

    Raises:
        ValueError: A feature is not a column of `frame`, `y` does not have one label per row or
            has a single class, or `repeats` or `max_rows` is out of range.

    """
    import pandas as pd
    from sklearn.inspection import permutation_importance

    names = _labels(features, name="features")
    if not names:
        raise ValueError("features is empty; name the columns the model predicts from")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"features {missing} are not columns of frame")
    _positive_int(repeats, name="repeats")
    _positive_int(max_rows, name="max_rows")
    if max_rows < 2:
        raise ValueError(f"max_rows must be at least 2, got {max_rows}")
    target = np.asarray(y)
    if target.ndim != 1 or len(target) != len(frame):
        raise ValueError(f"y must have one label per row of frame ({len(frame)} rows), got shape {target.shape}")
    rows = frame[names]
    if len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False))
        rows, target = rows.iloc[keep], target[keep]
    n_classes = pd.Series(target).nunique(dropna=False)
    if n_classes < 2:
        raise ValueError("y has a single class in the rows scored; importances need at least two")
    classes = getattr(model, "classes_", None)
    binary = (len(classes) if classes is not None else n_classes) == 2
    ranks = hasattr(model, "predict_proba") or hasattr(model, "decision_function")
    scoring = "roc_auc" if binary and ranks else "accuracy"
    result = permutation_importance(model, rows, target, scoring=scoring, n_repeats=repeats, random_state=seed)
    means = np.asarray(result["importances_mean"], dtype=float)  # one scorer: a Bunch
    return {name: float(value) for name, value in zip(names, means, strict=True)}


# --- rendering -----------------------------------------------------------------------------


@contextmanager
def _figure(size: tuple[float, float]) -> Iterator[Figure]:
    """Yield a fresh Agg-backed figure, holding the render lock; clear it afterwards."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _RENDER_LOCK:
        fig = Figure(figsize=size, dpi=DPI, layout="tight")
        FigureCanvasAgg(fig)
        try:
            yield fig
        finally:
            fig.clear()


def _png(fig: Figure) -> bytes:
    """Return the PNG bytes of a drawn figure, quantized to a 256-color palette.

    Plots have few distinct colors, so the palette loses nothing visible and makes the file about
    three times smaller than RGBA (anti-aliased text is most of its size). Pillow, a dependency of
    matplotlib, writes no software-version metadata, so the bytes are deterministic.
    """
    from PIL import Image

    fig.canvas.draw()  # applies the tight layout
    canvas = cast("FigureCanvasAgg", fig.canvas)  # attached by _figure
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    palette = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _title(ax: Axes, title: str, subtitle: str) -> None:
    """Set a two-line title: the title, then a subtitle of context (counts, totals)."""
    ax.set_title(f"{_text(title, limit=60)}\n{subtitle}", fontsize=_TITLE_SIZE - 1)


def _bar_axis(ax: Axes, names: Sequence[str], *, size: float, limit: int = 28) -> None:
    """Label the bars of a horizontal bar chart and drop the frame's top and right spines."""
    ax.set_yticks(range(len(names)), [_text(name, limit=limit) for name in names], fontsize=size)
    pad = max(0.0, (5 - len(names)) / 2)  # a few bars keep the thickness of five, centered
    ax.set_ylim(-0.6 - pad, len(names) - 0.4 + pad)
    ax.tick_params(axis="x", labelsize=_TICK_SIZE)
    ax.spines[["top", "right"]].set_visible(False)


def _bar_tick_size(n: int) -> float:
    """Return a tick font size that keeps `n` bar labels apart in a 4-inch panel."""
    return _TICK_SIZE if n <= 12 else _NOTE_SIZE if n <= 16 else 6


def _legend(ax: Axes, patches: Sequence[tuple[str, str]], *, line: str) -> None:
    """Add a legend of colored patches and one dashed line."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Artist] = [Patch(color=color, label=label) for color, label in patches]
    handles.append(Line2D([], [], color=_GREY, linestyle="--", linewidth=1, label=line))
    ax.legend(handles=handles, loc="lower right", fontsize=_NOTE_SIZE)


def _bottom_up(items: Sequence[tuple[str, float]]) -> tuple[list[str], list[float]]:
    """Reverse (name, value) pairs ranked largest first, so that barh draws the largest on top."""
    return [name for name, _ in reversed(items)], [value for _, value in reversed(items)]


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most `MAX_CURVE_POINTS` evenly spaced points of a curve, both ends included."""
    if x.size <= MAX_CURVE_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, x.size - 1, MAX_CURVE_POINTS).round().astype(int))
    return x[keep], y[keep]


def _text(value: object, *, limit: int | None = None) -> str:
    """Return text to show literally: shortened to `limit` characters, `$` not starting mathtext."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _percent(share: float) -> str:
    """Format a share as a percentage, keeping tiny non-zero shares visible."""
    if share == 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _p_value(p: float) -> str:
    """Format an adjusted p-value for a bar label."""
    if math.isnan(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# --- validation ----------------------------------------------------------------------------


def _count_matrix(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Return `matrix` as a square int array, or raise naming `matrix`."""
    try:
        counts = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"matrix must be a square matrix of counts: {error}") from error
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square matrix, got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("matrix must hold non-negative integer counts")
    return counts.astype(np.int64)


def _labels(values: Sequence[str], *, name: str) -> list[str]:
    """Return a sequence of names as strings; a bare string is refused (it is not a list of names)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of names, got {values!r}")
    return [str(value) for value in values]


def _positive_int(value: int, *, name: str) -> None:
    """Raise naming `name` unless `value` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _finite_float(value: object, *, name: str) -> float:
    """Return `value` as a finite float, or raise naming `name`."""
    number = _optional_float(value, name=name)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def _optional_float(value: object, *, name: str) -> float:
    """Return `value` as a float, None as NaN; raise naming `name` for anything else."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _float_mapping(values: Mapping[str, float], *, name: str) -> dict[str, float]:
    """Return a non-empty mapping of finite floats keyed by name, or raise naming `name`."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{name} must be a non-empty mapping of name to number")
    return {str(key): _finite_float(value, name=f"{name}[{key!r}]") for key, value in values.items()}


def _share_mapping(values: Mapping[str, float], *, name: str) -> dict[str, float]:
    """Return a non-empty mapping of shares in [0, 1], or raise naming `name`."""
    shares = _float_mapping(values, name=name)
    outside = {key: value for key, value in shares.items() if not 0.0 <= value <= 1.0}
    if outside:
        raise ValueError(f"{name} must hold shares in [0, 1], got {outside}")
    return shares


def _float_vector(values: Sequence[float], *, name: str) -> np.ndarray:
    """Return a non-empty 1-D array of finite floats, or raise naming `name`."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers: {error}") from error
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has non-finite values (NaN or inf)")
    return array


def _is_positive(y_true: Sequence[Any], positive: Any) -> np.ndarray:
    """Return a boolean array: which labels of `y_true` equal `positive`."""
    labels = np.asarray(y_true, dtype=object)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D sequence of labels, got shape {labels.shape}")
    return np.fromiter((label == positive for label in labels), dtype=bool, count=labels.size)


def _drift_rows(records: Sequence[Mapping[str, object]]) -> list[tuple[str, float, bool, float]]:
    """Return (feature, psi, drifted, adjusted p-value) per record, or raise naming the record."""
    if isinstance(records, Mapping) or not isinstance(records, Sequence) or not records:
        raise ValueError("records must be a non-empty sequence of mappings, one per feature (e.g. to_records())")
    rows = []
    keys = ("feature", "psi", "drifted", "adjusted_p_value")
    for i, record in enumerate(records):
        if not isinstance(record, Mapping) or any(key not in record for key in keys):
            raise ValueError(f"records[{i}] must be a mapping with keys {list(keys)}, got {record!r}")
        psi = _finite_float(record["psi"], name=f"records[{i}]['psi']")
        p_value = _optional_float(record["adjusted_p_value"], name=f"records[{i}]['adjusted_p_value']")
        rows.append((str(record["feature"]), psi, bool(record["drifted"]), p_value))
    return rows
