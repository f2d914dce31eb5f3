"""Small PNG plots for Dagster metadata, and permutation feature importances.

Each `*_png` function returns PNG bytes (`title` is its heading); `as_markdown_image` makes the
inline markdown the Dagster UI shows. Confusion matrix, ROC and precision-recall plots are
scikit-learn's `Display` classes. Each figure is a `matplotlib.figure.Figure` with its own Agg
canvas: nothing is registered with pyplot and no backend is chosen; a module lock serializes
rendering (matplotlib artists are not thread-safe). PNGs are 256-color palettes without version
metadata (the same input gives the same bytes), 5 x 4 inches per panel at 90 dpi. Names from the
data are shown literally (a `$` does not start mathtext). Matplotlib and scikit-learn are
imported inside functions.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 90
SINGLE_PANEL = (5.0, 4.0)
TWO_PANELS = (9.0, 4.0)
MAX_BARS = 20
"""Most bars a 4-inch panel shows legibly; longer lists show their largest values."""
MAX_ANNOTATED_CLASSES = 15
"""Largest confusion matrix whose cells get their count written in."""
BLUE, RED, GREY = "#4C72B0", "#C44E52", "#8C8C8C"
_LOCK = threading.RLock()


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]], *, labels: Sequence[str], title: str = "Confusion matrix"
) -> bytes:
    """A confusion matrix (rows true, columns predicted; one label per row) by `ConfusionMatrixDisplay`.

    It takes the matrix the metrics were computed from, so the plot shows those very counts.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(matrix, dtype=np.int64)
    total = int(counts.sum())
    accuracy = f"{np.trace(counts) / total:.3f}" if total else "n/a"
    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        display = ConfusionMatrixDisplay(counts, display_labels=[_text(label, 14) for label in labels])
        display.plot(
            ax=ax,
            cmap="Blues",
            colorbar=False,
            values_format=",d",
            include_values=len(labels) <= MAX_ANNOTATED_CLASSES,
        )
        ax.tick_params(axis="x", labelrotation=45 if len(labels) > 4 else 0)
        ax.set_title(f"{_text(title, 60)}\nn = {total:,}, accuracy = {accuracy}", fontsize=10)
        return _png(fig)


def roc_pr_curves_png(
    y_true: Sequence[Any], scores: Sequence[float], *, positive: Any, title: str = "ROC and precision-recall curves"
) -> bytes:
    """ROC and precision-recall curves of the positive class's scores, with chance levels.

    `RocCurveDisplay` and `PrecisionRecallDisplay` (`from_predictions`) draw them with the AUC and
    the average precision.
    """
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    truth = np.asarray(y_true)
    with _figure(TWO_PANELS) as fig:
        roc, pr = fig.subplots(1, 2)
        for display, ax in ((RocCurveDisplay, roc), (PrecisionRecallDisplay, pr)):
            display.from_predictions(truth, scores, pos_label=positive, ax=ax, name="model", plot_chance_level=True)
            ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
        roc.set_title("ROC", fontsize=10)
        pr.set_title("Precision-recall", fontsize=10)
        subtitle = f"positive class = {_text(positive, 24)}, n = {len(truth):,}"
        fig.suptitle(f"{_text(title, 80)}\n{subtitle}", fontsize=11)
        return _png(fig)


def feature_importance_png(
    importances: Mapping[str, float], *, top: int = 15, title: str = "Feature importance"
) -> bytes:
    """The `top` largest importances (per feature name) as bars; negative ones (noise) in grey."""
    ranked = sorted(((str(k), float(v)) for k, v in importances.items()), key=lambda kv: (-kv[1], kv[0]))
    shown = ranked[:top]
    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        _bars(ax, shown, colors=[BLUE if v >= 0 else GREY for _, v in shown], labels=[f"{v:.3g}" for _, v in shown])
        ax.axvline(0, color=GREY, linewidth=0.8)
        ax.margins(x=0.18)
        ax.set_xlabel("Importance", fontsize=9)
        ax.set_title(f"{_text(title, 60)}\ntop {len(shown)} of {len(ranked)} features", fontsize=10)
        return _png(fig)


def drift_png(records: Sequence[Mapping[str, Any]], *, psi_threshold: float, title: str = "Feature drift") -> bytes:
    """The 20 largest PSI of `DriftReport.to_records()` as bars, drifted ones red, the threshold dashed.

    Each bar is labelled with its adjusted p-value as the drift summary prints it.
    """
    from ml_assets.lib.drift import format_p_value

    rows = sorted(records, key=lambda r: (-r["psi"], str(r["feature"])))
    shown = rows[:MAX_BARS]
    labels = [
        f"adj. p {'n/a' if r['adjusted_p_value'] is None else format_p_value(r['adjusted_p_value'])}" for r in shown
    ]
    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        _bars(
            ax,
            [(str(r["feature"]), r["psi"]) for r in shown],
            colors=[RED if r["drifted"] else BLUE for r in shown],
            labels=labels,
        )
        ax.axvline(psi_threshold, color=GREY, linestyle="--", linewidth=1, label=f"threshold = {psi_threshold:g}")
        ax.set_xlim(0, max(psi_threshold, shown[0]["psi"]) * 1.35)
        ax.set_xlabel("Population stability index (PSI)", fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
        drifted = sum(bool(r["drifted"]) for r in rows)
        more = f"; largest {len(shown)} PSI shown" if len(shown) < len(rows) else ""
        ax.set_title(f"{_text(title, 60)}\n{drifted} of {len(rows)} features drifted (red){more}", fontsize=10)
        return _png(fig)


def batch_profile_png(
    null_share: Mapping[str, float], class_balance: Mapping[str, float], *, title: str = "Batch profile"
) -> bytes:
    """Each column's share of nulls and each class's share of rows, as two panels of bars on 0-100%."""
    with _figure(TWO_PANELS) as fig:
        for ax, shares, heading, color in zip(
            fig.subplots(1, 2),
            (null_share, class_balance),
            ("Null share by column", "Class balance"),
            (GREY, BLUE),
            strict=True,
        ):
            ranked = sorted(((str(k), float(v)) for k, v in shares.items()), key=lambda kv: (-kv[1], kv[0]))
            shown = ranked[:MAX_BARS]
            _bars(ax, shown, colors=[color] * len(shown), labels=[_percent(v) for _, v in shown], limit=22)
            ax.set_xlim(0, 1.18)
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"], fontsize=8)
            more = f" (largest {len(shown)} of {len(ranked)})" if len(shown) < len(ranked) else ""
            ax.set_title(heading + more, fontsize=10)
        fig.suptitle(_text(title, 80), fontsize=11)
        return _png(fig)


def metric_history_png(
    history: Sequence[Mapping[str, Any]], *, metrics: Sequence[str], title: str = "Metrics by model version"
) -> bytes:
    """`metrics` across model versions (`history`: oldest first, each with `version`), one line each."""
    versions = [_text(r["version"], 12) for r in history]
    with _figure(SINGLE_PANEL) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(versions))
        for name in metrics:
            values = [math.nan if r.get(name) is None else float(r[name]) for r in history]
            ax.plot(x, values, marker="o", markersize=4, linewidth=1.5, label=_text(name, 30))
        step = max(1, math.ceil(len(versions) / 12))
        rotate = len(versions[::step]) * max(map(len, versions)) > 40
        ax.set_xticks(
            x[::step], versions[::step], fontsize=8, rotation=45 if rotate else 0, ha="right" if rotate else "center"
        )
        ax.set_xlim(-0.5, len(versions) - 0.5)
        ax.set_xlabel("Model version", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{_text(title, 60)}\n{len(versions)} versions", fontsize=10)
        return _png(fig)


def as_markdown_image(png: bytes, *, alt: str) -> str:
    """Return `![alt](data:image/png;base64,...)` for `dg.MetadataValue.md`; the alt text is escaped."""
    text = " ".join(str(alt).split()).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"![{text}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


@contextmanager
def _figure(size: tuple[float, float]) -> Iterator[Figure]:
    """Yield a fresh Agg-backed figure, holding the render lock."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _LOCK:
        fig = Figure(figsize=size, dpi=DPI, layout="tight")
        FigureCanvasAgg(fig)
        try:
            yield fig
        finally:
            fig.clear()


def _png(fig: Figure) -> bytes:
    """The figure as a 256-color palette PNG: a third of RGBA's size, and the same bytes every time."""
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    palette = Image.fromarray(rgba).convert("RGB").quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _bars(
    ax: Axes, items: Sequence[tuple[str, float]], *, colors: Sequence[str], labels: Sequence[str], limit: int = 28
) -> None:
    """Horizontal bars, the first item on top, each labelled at its end."""
    n = len(items)
    bars = ax.barh(range(n)[::-1], [v for _, v in items], color=colors, height=0.7)
    ax.bar_label(bars, labels=labels, padding=2, fontsize=7)
    size = 8 if n <= 12 else 7 if n <= 16 else 6
    ax.set_yticks(range(n)[::-1], [_text(name, limit) for name, _ in items], fontsize=size)
    pad = max(0.0, (5 - n) / 2)  # a few bars keep the thickness of five
    ax.set_ylim(-0.6 - pad, n - 0.4 + pad)
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def _text(value: object, limit: int) -> str:
    """Text to show literally: at most `limit` characters, `$` not starting mathtext."""
    text = str(value)
    text = text[: limit - 1] + "…" if len(text) > limit else text
    return text.replace("$", r"\$")


def _percent(share: float) -> str:
    """A share as a percentage, keeping tiny non-zero shares visible."""
    if share == 0:
        return "0%"
    return "<0.1%" if share < 0.001 else f"{share:.1%}" if share < 0.1 else f"{share:.0%}"
