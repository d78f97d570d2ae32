"""The style every figure shares: a group's points or line with error bars (clipped points hollow),
the title and note, the legend outside the axes (the oracle last), and saving as PNG and PDF."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .axes import _Axis
from .groups import _Group
from .labels import _EMPTY, ORACLE, _text

DPI = 150


def _errors(err: np.ndarray, clipped: np.ndarray):
    """Error bars to draw: none where no point has a spread (one seed), none at a clipped point."""
    e = np.where(clipped | ~np.isfinite(err), 0.0, err)
    return e if (e > 0).any() else None


def _plot(ax, g: _Group, x, y, xerr, yerr, xs: _Axis, ys: _Axis, line: bool) -> None:
    """One group's points (or line) with error bars; clipped points hollow, on top."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if not keep.any():
        return
    x, y = x[keep], y[keep]
    xerr = None if xerr is None else np.asarray(xerr, float)[keep]
    yerr = None if yerr is None else np.asarray(yerr, float)[keep]
    px, cx = xs.show(x)
    py, cy = ys.show(y)
    clipped = cx | cy
    style = g.style(line)
    ax.errorbar(
        px,
        py,
        xerr=None if xerr is None else _errors(xerr, cx),
        yerr=None if yerr is None else _errors(yerr, cy),
        capsize=3,
        elinewidth=1,
        label=g.label,
        **style,
    )
    if clipped.any():
        ax.plot(
            px[clipped],
            py[clipped],
            linestyle="none",
            marker=style["marker"],
            markersize=style["markersize"],
            markerfacecolor="white",
            markeredgecolor=style["color"],
            markeredgewidth=1.5,
            zorder=5,
        )


def _titles(fig: Figure, ax, title: str, notes: list[str]) -> None:
    fig.suptitle(textwrap.fill(title, 80), fontsize=11)
    notes = [n for n in notes if n]
    note = "; ".join(notes)
    if len(note) > 90:  # one note a line
        note = "\n".join(textwrap.fill(n, 90) for n in notes)
    if note:
        ax.set_title(note, fontsize=8)


def _legend(ax, title: str) -> None:
    """The legend outside the axes (the layout makes room), titled with what its entries show:
    right of them, or under the figure where long entries would squeeze the axes."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith(ORACLE))  # the oracle last
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    common = dict(title=title, fontsize=8, title_fontsize=8, alignment="left")
    if max(len(t) for t in [*labels, title]) <= 40 and len(labels) <= 12:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **common)
    else:  # under the axes, the figure taller by the legend's rows so the axes keep their height
        ncols = 1 if max(map(len, labels)) > 55 else 2
        fig = ax.figure
        fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + 0.45 + 0.2 * math.ceil(len(labels) / ncols))
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, **common)


def _new(figsize=(7.5, 4.2)) -> tuple[Figure, object]:
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return fig, ax


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=DPI)
    plt.close(fig)
    return paths


def _saved(fig: Figure | None, stem: Path) -> list[Path]:
    return [] if fig is None else _save(fig, stem)


def _context(df: pd.DataFrame, label_keys: list[str]) -> str:
    """Settings every record shares that a reader needs (dataset, sub-model), for the note."""
    parts = [
        _text(df[k].iloc[0])
        for k in ("dataset", "submodel")
        if k in df and k not in label_keys and df[k].map(_text).nunique() == 1 and _text(df[k].iloc[0]) not in _EMPTY
    ]
    return ", ".join(parts)
