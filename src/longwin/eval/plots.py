"""PNG plots with matplotlib's Agg canvas (no display, no global pyplot state).

Two shapes cover every task: a depth x length heatmap with the NIAH red-amber-green colours, and
a line plot of one value against length (or position) with one line per series.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from longwin.outputs import write_bytes

NIAH_COLOURS = ("#F0496E", "#EBB839", "#0CD79F")


def length_label(n: int | str) -> str:
    """4096 -> "4k", 1000 -> "1000": tick labels as papers print them."""
    n = int(n)
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def save_heatmap(
    path: Path,
    cells: Mapping[str, Mapping[str, float]],
    *,
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    xlabel: str = "Context length (tokens)",
    ylabel: str = "Depth (%)",
    vmin: float = 0.0,
    vmax: float = 100.0,
) -> None:
    """`cells[col][row]` values drawn with rows top to bottom (depth 0 at the top)."""
    from matplotlib.colors import LinearSegmentedColormap

    data = [[cells.get(c, {}).get(r, math.nan) for c in cols] for r in rows]
    fig = _figure((max(5.0, 1.1 * len(cols) + 2), max(3.5, 0.5 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    cmap = LinearSegmentedColormap.from_list("niah", NIAH_COLOURS)
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), [length_label(c) for c in cols], rotation=45)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    _save(fig, path)


def save_lines(
    path: Path,
    series: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    lengths_on_x: bool = True,
    logy: bool = False,
    vline: float | None = None,
    hline: float | None = None,
    bold: str | None = None,
) -> None:
    """One line per series over its x keys; lengths go on a log2 axis with "4k"-style ticks.

    `vline` marks the model's window when it lies near the plotted lengths; `bold` thickens a series.
    """
    fig = _figure((7.0, 4.5))
    ax = fig.add_subplot()
    xs_all: set[float] = set()
    for name, points in series.items():
        xs = [float(x) for x in points]
        ys = [points[x] for x in points]
        xs_all.update(xs)
        ax.plot(xs, ys, marker="o", label=name, linewidth=2.5 if name == bold else 1.2)
    if lengths_on_x and xs_all:
        ax.set_xscale("log", base=2)
        ticks = sorted(xs_all)
        ax.set_xticks(ticks, [length_label(int(x)) for x in ticks])
        ax.minorticks_off()
    if logy:
        from matplotlib.ticker import FormatStrFormatter, NullFormatter

        ys_all = [y for points in series.values() for y in points.values() if y and y > 0]
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        narrow = bool(ys_all) and max(ys_all) < 10 * min(ys_all)  # label minor ticks only within a decade
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g") if narrow else NullFormatter())
    if vline and xs_all and min(xs_all) / 2 <= vline <= 2 * max(xs_all):  # a far-off line would squash the data
        ax.axvline(vline, color="grey", linestyle="--", linewidth=1, label="model window")
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    """PNG bytes rendered in memory, then written atomically (no torn image after an interruption)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_bytes(path, buffer.getvalue())
