"""The report's plots: matplotlib figures (Agg, no display), embedded as PNG data URIs.

Figures are drawn on `matplotlib.figure.Figure` directly rather than through pyplot, so
no global state or GUI backend is involved. Every figure's size is fixed or grows with
the number of models, subsets or categories, never with the number of rows.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure as MplFigure

from jobs.outputs.report.blocks import Figure

DPI = 80
MISSING_GREY = "#d9d9d9"
"""Cells with no value inside a drawn matrix, told apart from the page's white."""


def _encode(fig: MplFigure, title: str, alt: str) -> Figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return Figure(title, alt, "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())


def nothing(title: str, why: str) -> Figure:
    """A plot with nothing to draw: one line saying why, instead of empty axes."""
    return Figure(title, why, "", empty=why)


def _blank(*arrays: object) -> bool:
    """Whether no array holds a finite value other than 0."""
    return not any(np.any(np.nan_to_num(np.asarray(a, dtype=float), nan=0.0) != 0) for a in arrays)


def _grid(n: int, ncols: int, cell: tuple[float, float]) -> tuple[MplFigure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = MplFigure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def histograms(
    counts: dict[str, np.ndarray], edges: np.ndarray, *, threshold: float, title: str, xlabel: str
) -> Figure:
    """One histogram per group from counts already binned on `edges`, with the threshold marked."""
    if _blank(*counts.values()):
        return nothing(title, "no scenario has a value yet")
    fig, axes = _grid(len(counts), 3, (3.4, 2.4))
    at_or_above = edges[:-1] >= threshold - 1e-9
    summary = []
    for ax, (name, c) in zip(axes, counts.items(), strict=True):
        ax.stairs(c, edges, fill=True, color="#4c72b0")
        ax.axvline(threshold, color="#c44e52", linestyle="--", linewidth=1.5)
        n, high = int(c.sum()), int(c[at_or_above].sum())
        ax.set_title(f"{name} (n={n}, high={high})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        summary.append(f"{name}: {n} scenarios, {high} at or above {threshold}")
    return _encode(fig, title, "; ".join(summary))


def stacked_bars(
    panels: dict[str, tuple[list[str], np.ndarray]],
    segments: Sequence[str],
    *,
    title: str,
    cmap: str,
    ncols: int = 2,
) -> Figure:
    """Horizontal stacked bars of shares, one panel per group; rows are bars, columns segments."""
    if _blank(*(shares for _, shares in panels.values())):
        return nothing(title, "no rows to share out")
    fig, axes = _grid(len(panels), ncols, (5.2, 0.32 * max(len(v[0]) for v in panels.values()) + 1.2))
    colors = _colors(cmap, len(segments))
    for ax, (name, (labels, shares)) in zip(axes, panels.items(), strict=True):
        left = np.zeros(len(labels))
        for j, seg in enumerate(segments):
            ax.barh(labels, shares[:, j], left=left, color=colors[j], label=seg, height=0.8)
            left += shares[:, j]
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=min(len(segments), 4),
        fontsize=7,
    )
    alt = f"{title}: shares of {', '.join(segments)} for {', '.join(panels)}"
    return _encode(fig, title, alt)


def bars(
    labels: list[str],
    values: np.ndarray,
    *,
    title: str,
    ylabel: str,
    errors: np.ndarray | None = None,
    annotate: list[str] | None = None,
) -> Figure:
    """Vertical bars, optionally with error bars and a text label on each."""
    if _blank(values):
        return nothing(title, f"every value is 0 ({', '.join(labels)})" if labels else "no values")
    fig = MplFigure(figsize=(max(4.0, 0.55 * len(labels) + 1.5), 3.0), layout="constrained")
    ax = fig.subplots()
    drawn = ax.bar(labels, values, yerr=errors, color="#4c72b0", capsize=3)
    if annotate:
        ax.bar_label(drawn, labels=annotate, fontsize=7)
    ax.set_ylim(bottom=0, top=max(1.0, float(np.nanmax(values, initial=0.0)) * 1.15))
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    alt = f"{title}: " + ", ".join(f"{lab} {v:.3g}" for lab, v in zip(labels, values, strict=True))
    return _encode(fig, title, alt)


def grouped_bars(
    groups: list[str],
    series: dict[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    title: str,
    ylabel: str,
) -> Figure:
    """Bars per group, one colour per series, with optional error bars (e.g. rate by bin per family)."""
    if _blank(*(vals for vals, _ in series.values())):
        return nothing(title, f"every value is 0 ({', '.join(series)} over {', '.join(groups)})")
    fig = MplFigure(
        figsize=(max(4.5, 0.9 * len(groups) * max(1, len(series)) / 2 + 2), 3.0), layout="constrained"
    )
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, (vals, errs)) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, yerr=errs, label=name, capsize=2)
    ax.set_xticks(x, groups, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    alt = f"{title}: {', '.join(series)} over {', '.join(groups)}"
    return _encode(fig, title, alt)


def heatmap(
    matrix: np.ndarray,
    rows: list[str],
    cols: list[str],
    *,
    title: str,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """A labelled matrix; values printed in the cells while they stay readable."""
    if _blank(matrix):
        return nothing(title, "every cell is 0 or empty")
    fig = MplFigure(
        figsize=(max(4.0, 0.42 * len(cols) + 2.5), max(2.5, 0.32 * len(rows) + 1.5)), layout="constrained"
    )
    ax = fig.subplots()
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if len(rows) * len(cols) <= 400:
        finite = matrix[np.isfinite(matrix)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    fmt.format(v),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v < mid else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    return _encode(fig, title, f"{title}: {len(rows)} rows ({', '.join(rows[:12])}) by {len(cols)} columns")


def heatmap_grid(
    cells: Mapping[tuple[str, str], np.ndarray],
    rows: list[str],
    cols: list[str],
    *,
    ticks: list[str],
    title: str,
    row_title: str,
    col_title: str,
    scale: str,
) -> Figure:
    """Small multiples: a k x k matrix of shares per (row, column) of a grid, on one 0..1 colour scale.

    The panels are drawn as one image with a blank line between them, so drawing time does
    not grow with the number of panels (an axes each took ~3 s for 12 x 12). Block labels
    name the rows and columns; the short `ticks` (explained by the caller) number the
    entries inside each block. A (row, column) without a matrix, such as a model paired
    with itself, stays blank; a NaN entry inside a block is grey.
    """
    if _blank(*cells.values()):
        return nothing(title, "every panel is 0 or empty")
    k, step = len(ticks), len(ticks) + 1
    mosaic = np.full((len(rows) * step - 1, len(cols) * step - 1), np.nan)
    drawn = np.full(mosaic.shape, np.nan)
    for (i, r), (j, c) in itertools.product(enumerate(rows), enumerate(cols)):
        m = cells.get((r, c))
        if m is not None:
            block = np.s_[i * step : i * step + k, j * step : j * step + k]
            mosaic[block], drawn[block] = m, 1.0
    fig = MplFigure(
        figsize=(0.17 * mosaic.shape[1] + 3.0, 0.17 * mosaic.shape[0] + 2.0), layout="constrained"
    )
    ax = fig.subplots()
    ax.imshow(drawn, cmap=ListedColormap([MISSING_GREY]), vmin=0.0, vmax=1.0)  # NaN inside a block: grey
    image = ax.imshow(mosaic, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks([j * step + (k - 1) / 2 for j in range(len(cols))], cols, rotation=45, ha="left")
    ax.set_yticks([i * step + (k - 1) / 2 for i in range(len(rows))], rows)
    ax.set_xticks([j * step + t for j in range(len(cols)) for t in range(k)], ticks * len(cols), minor=True)
    ax.set_yticks([i * step + t for i in range(len(rows)) for t in range(k)], ticks * len(rows), minor=True)
    ax.tick_params(
        which="major", length=0, labelsize=7, top=True, labeltop=True, bottom=False, labelbottom=False
    )
    ax.tick_params(which="minor", length=0, labelsize=5)
    ax.xaxis.remove_overlapping_locs = ax.yaxis.remove_overlapping_locs = False  # keep a block's middle tick
    ax.tick_params(axis="y", which="minor", left=False, labelleft=False, right=True, labelright=True)
    ax.spines[:].set_visible(False)
    ax.set_xlabel(col_title, fontsize=8)
    ax.set_ylabel(row_title, fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.5, pad=0.04, label=scale)
    ax.set_title(title, fontsize=10)
    alt = f"{title}: {len(rows)} by {len(cols)} panels of {k} by {k} ({', '.join(ticks)})"
    return _encode(fig, title, alt)


def _colors(cmap: str, n: int) -> list[tuple[float, ...]]:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return [cm(x) for x in np.linspace(0.05, 0.95, n)]
