"""The report's figures, drawn with Matplotlib's object-oriented API and embedded as base64 PNG.

Contract: ``png_uri(fig) -> str`` (a ``data:image/png;base64,…`` URI; the page needs no file
and no network); ``grid_heatmap(panels, title)``, ``profile_lines(frame, x, y, line, panel,
title, xlabel, ylabel)`` return a ``Figure``. Nothing here touches pyplot's global state.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 90


def png_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def grid_heatmap(
    panels: Sequence[tuple[str, pd.DataFrame, pd.DataFrame | None]],
    *,
    value_range: tuple[float, float] | None = None,
    cmap: str = "viridis",
    centre: bool = False,
) -> Figure:
    """One heatmap per ``(title, mean, spread)``: rows = marks, columns = cells, text = mean ± spread."""
    n = len(panels)
    width = sum(max(3.0, 0.9 * len(mean.columns) + 1.8) for _, mean, _ in panels)
    height = max(2.5, 0.45 * max(len(mean.index) for _, mean, _ in panels) + 1.5)
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, mean, spread) in zip(axes, panels, strict=True):
        if spread is not None:  # a mark or cell with one fold has no spread: its row/column may be absent
            spread = spread.reindex(index=mean.index, columns=mean.columns)
        values = mean.to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        if value_range is not None:
            lo, hi = value_range
        elif centre:
            bound = float(np.max(np.abs(finite))) if finite.size else 1.0
            lo, hi = -bound or -1.0, bound or 1.0
        else:
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            hi = hi if hi > lo else lo + 1.0
        colours = colormaps[cmap].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=lo, vmax=hi, aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if math.isfinite(value):
                extra = spread.iat[i, j] if spread is not None else float("nan")
                text = f"{value:.2f}" + (f"\n±{extra:.2f}" if math.isfinite(extra) else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if (value - lo) < 0.5 * (hi - lo) else "black")
        ax.set_xticks(range(len(mean.columns)), [str(c) for c in mean.columns], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(mean.index)), [str(r) for r in mean.index], fontsize=8)
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def profile_lines(
    frame: pd.DataFrame, *, x: str, y: str, line: str, panel: str, title: str, xlabel: str, ylabel: str,
    style: str | None = None,
) -> Figure:
    """Line plots of ``y`` against ``x``, one line per ``line`` (and ``style``), one panel per ``panel`` value."""
    names = list(dict.fromkeys(frame[panel]))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        part = frame[frame[panel] == name]
        for key, group in part.groupby([line] + ([style] if style else []), sort=False):
            key = key if isinstance(key, tuple) else (key,)
            dashes = "--" if style and str(key[-1]).lower() in ("false", "0", "not expressed") else "-"
            group = group.sort_values(x)
            ax.plot(group[x], group[y], dashes, label=" ".join(map(str, key)), linewidth=1.2)
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
