"""One point per group, with its spread over seeds on both axes: utility after unlearning against
unlearning time, and what a method saves against what it leaves behind (exact methods filled,
approximate ones hollow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import axis_label
from .axes import _Axis, _declutter, _log_ticks
from .drawing import _context, _legend, _new, _plot, _saved, _titles
from .groups import _groups, _oracle_groups, _paint, _per_seed, _spread_note, _stat
from .labels import _text


def draw_utility_vs_time(df: pd.DataFrame, label_keys: list[str], metric: str) -> Figure | None:
    """Utility after unlearning against unlearning time (log), one point per group, error bars on
    both axes; the oracle's point is its retraining time and utility."""
    if metric not in df or "unlearn_s" not in df:
        return None
    groups, legend_title = _groups(df, label_keys)
    if not any(g.oracle for g in groups) and "." in metric:
        groups += _oracle_groups(
            df, label_keys, {"unlearn_s": "retrain_s", metric: f"retrain.{metric.split('.', 1)[1]}"}
        )
        _paint(groups)
    points = [(g, _stat(_per_seed(g.rows, "unlearn_s")), _stat(_per_seed(g.rows, metric))) for g in groups]
    points = [(g, sx, sy) for g, sx, sy in points if sx.n and sy.n]
    if not points:
        return None
    fig, ax = _new()
    xs = _Axis("unlearn_s", log=True).fit([sx.mean for _, sx, _ in points])
    ys = _Axis(metric, log=False).fit([sy.mean for _, _, sy in points])
    for g, sx, sy in points:
        _plot(ax, g, [sx.mean], [sy.mean], [sx.std], [sy.std], xs, ys, line=False)
    ax.set_xscale("log")
    _log_ticks(ax, "x")
    ax.set_xlabel(axis_label("unlearn_s"))
    ax.set_ylabel(axis_label(metric))
    ns = [s.n for _, sx, sy in points for s in (sx, sy)]
    _titles(
        fig,
        ax,
        "Utility after unlearning vs unlearning time",
        [_context(df, label_keys), _spread_note(ns, "both axes"), *xs.note(), *ys.note()],
    )
    _legend(ax, legend_title)
    _declutter(fig)
    return fig


def utility_vs_time(df: pd.DataFrame, label_keys: list[str], metric: str, stem: Path) -> list[Path]:
    return _saved(draw_utility_vs_time(df, label_keys, metric), stem)


# how the trade-off figure marks a method's family (exact: filled circles; approximate: hollow triangles)
FAMILY_MARKERS = {"exact": "o", "approximate": "^"}


def draw_tradeoff(
    df: pd.DataFrame, label_keys: list[str], x: str, y: str, style: str = "method.family", title: str = ""
) -> Figure | None:
    """What a method saves against what it leaves behind: `x` (a speedup, log scale) against `y`
    (e.g. the deleted users' rank gap over the seed floor), one point per group with its spread
    over seeds on both axes; the marker tells the `style` key's values apart (exact methods
    filled, approximate ones hollow)."""
    if x not in df or y not in df:
        return None
    groups, legend_title = _groups(df, [k for k in label_keys if k != style])
    points = [(g, _stat(_per_seed(g.rows, x)), _stat(_per_seed(g.rows, y))) for g in groups]
    points = [(g, sx, sy) for g, sx, sy in points if sx.n and sy.n]
    if not points:
        return None
    fig, ax = _new()
    xs = _Axis(x, log=True).fit([sx.mean for _, sx, _ in points])
    ys = _Axis(y, log=False).fit([sy.mean for _, _, sy in points])
    for g, sx, sy in points:
        kind = _text(g.rows[style].iloc[0]) if style in g.rows else ""
        if not g.oracle and kind in FAMILY_MARKERS:
            g.marker = FAMILY_MARKERS[kind]
        _plot(ax, g, [sx.mean], [sy.mean], [sx.std], [sy.std], xs, ys, line=False)
        if kind == "approximate" and not g.oracle:  # hollow: told apart without colour
            px, _ = xs.show(np.array([sx.mean]))
            py, _ = ys.show(np.array([sy.mean]))
            ax.plot(
                px,
                py,
                linestyle="none",
                marker=g.marker,
                markersize=7,
                markerfacecolor="white",
                markeredgecolor=g.color,
                markeredgewidth=1.5,
                zorder=5,
            )
    ax.set_xscale("log")
    _log_ticks(ax, "x")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ns = [s.n for _, sx, sy in points for s in (sx, sy)]
    _titles(
        fig,
        ax,
        title or f"{axis_label(y)} vs {axis_label(x)}",
        [
            _context(df, label_keys),
            "filled circles: exact; hollow triangles: approximate",
            _spread_note(ns, "both axes"),
            *xs.note(),
            *ys.note(),
        ],
    )
    _legend(ax, legend_title)
    _declutter(fig)
    return fig


def tradeoff(
    df: pd.DataFrame, label_keys: list[str], x: str, y: str, stem: Path, style: str = "method.family", title: str = ""
) -> list[Path]:
    return _saved(draw_tradeoff(df, label_keys, x, y, style, title), stem)
