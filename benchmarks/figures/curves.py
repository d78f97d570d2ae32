"""A line per group: utility after unlearning against the cut-off K, and any key against a setting
(numbers or names), the retrain oracle's line dashed."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import _per_k_label, axis_label
from .axes import _Axis, _declutter, _log_ticks, _value_ticks, _wants_log
from .drawing import _context, _legend, _new, _plot, _saved, _titles
from .groups import _groups, _oracle_groups, _paint, _per_seed, _spread_note, _stat
from .labels import _EMPTY, _natural, _text


def draw_metric_vs_k(df: pd.DataFrame, label_keys: list[str], metric: str, ks: list[int]) -> Figure | None:
    """`after.<metric>@K` against the cut-off K, a line per group, the oracle's dashed."""
    ks = [k for k in ks if f"after.{metric}@{k}" in df]
    if len(ks) < 2:
        return None
    cols = [f"after.{metric}@{k}" for k in ks]
    groups, legend_title = _groups(df, label_keys)
    if not any(g.oracle for g in groups):
        groups += _oracle_groups(df, label_keys, {c: f"retrain.{metric}@{k}" for c, k in zip(cols, ks)})
        _paint(groups)
    fig, ax = _new()
    ys = _Axis(cols[0], log=False).fit([_stat(_per_seed(g.rows, c)).mean for g in groups for c in cols])
    xs = _Axis("K", log=False).fit(ks)
    ns = []
    for g in groups:
        stats = [_stat(_per_seed(g.rows, c)) for c in cols]
        ns += [s.n for s in stats]
        _plot(ax, g, ks, [s.mean for s in stats], None, [s.std for s in stats], xs, ys, line=True)
    if max(ks) / max(min(ks), 1) >= 8:
        ax.set_xscale("log")
    ax.set_xlim(
        min(ks) / 1.15 if ax.get_xscale() == "log" else min(ks) - 0.05 * (max(ks) - min(ks)),
        max(ks) * 1.15 if ax.get_xscale() == "log" else max(ks) + 0.05 * (max(ks) - min(ks)),
    )
    _value_ticks(ax, "x", ks, [str(k) for k in ks])
    ax.set_xlabel("cut-off K")
    ax.set_ylabel(_per_k_label(cols[0], ks[0], f"after.{metric}@K"))
    _titles(
        fig,
        ax,
        f"{metric.upper() if len(metric) <= 5 else metric}@K after unlearning, by cut-off K",
        [_context(df, label_keys), _spread_note(ns), *ys.note()],
    )
    _legend(ax, legend_title)
    _declutter(fig)
    return fig


def metric_vs_k(df: pd.DataFrame, label_keys: list[str], metric: str, ks: list[int], stem: Path) -> list[Path]:
    return _saved(draw_metric_vs_k(df, label_keys, metric, ks), stem)


def _oracle_of(key: str) -> str | None:
    """The oracle's column for a plotted key: `after.X` -> `retrain.X`, `unlearn_s` -> `retrain_s`."""
    if key.startswith("after."):
        return "retrain." + key.split(".", 1)[1]
    return {"unlearn_s": "retrain_s"}.get(key)


def _positions(df: pd.DataFrame, x: str) -> tuple[list[str], bool, dict]:
    """(the setting's values in order, whether they are names, where each sits on the x axis):
    names at 0, 1, 2...; numbers at their value."""
    names = sorted(df[x].map(_text).unique(), key=_natural)
    categorical = any(_natural(n)[0] for n in names if n not in _EMPTY)
    where = {n: i for i, n in enumerate(names)} if categorical else {n: float(n) for n in names if n not in _EMPTY}
    return names, categorical, where


def _series(groups: list, x: str, y: str, where: dict) -> list:
    """(group, [(x position, statistics of `y`)...]) per group that has a value, in x order."""
    series = []
    for g in groups:
        stats = []
        for name, rows in g.rows.groupby(g.rows[x].map(_text), sort=False):
            if name in where:
                stats.append((where[name], _stat(_per_seed(rows, y))))
        stats = sorted(((p, s) for p, s in stats if s.n), key=lambda t: t[0])
        if stats:
            series.append((g, stats))
    return series


def _setting_ticks(ax, names: list[str], where: dict, categorical: bool, pos: np.ndarray, xlog: bool) -> None:
    """A tick at each value the setting takes (names slanted where they would crowd), and the view
    widened to hold the first and last on a log or named axis."""
    labels = names if categorical else [n for n in names if n in where]
    _value_ticks(ax, "x", [where[n] for n in labels], labels)
    if categorical and (len(labels) > 4 or max(map(len, labels)) > 6):
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    if xlog or categorical:
        pad = 0.5 if categorical else None
        ax.set_xlim(*((min(pos) - pad, max(pos) + pad) if categorical else (min(pos) / 1.3, max(pos) * 1.3)))


def draw_metric_vs(
    df: pd.DataFrame,
    x: str,
    y: str,
    label_keys: list[str],
    title: str = "",
    *,
    xscale: str | None = None,
    yscale: str | None = None,
) -> Figure | None:
    """`y` against a setting `x` (numbers or names), a line per group; scales `linear` / `log`, or
    None to choose (log for seconds and speedups over more than a decade, and for positive `x`
    spread over two decades or more)."""
    if x not in df or y not in df:
        return None
    df = df[~df[x].map(_text).isin(_EMPTY)]  # runs without the setting have no place on the x axis
    if df[x].map(_text).nunique() < 2:
        return None
    label_keys = [k for k in label_keys if k != x]
    groups, legend_title = _groups(df, label_keys)
    if not any(g.oracle for g in groups) and _oracle_of(y):
        groups += _oracle_groups(df, label_keys, {y: _oracle_of(y)})
        _paint(groups)
    names, categorical, where = _positions(df, x)
    series = _series(groups, x, y, where)
    if not series:
        return None
    means = [s.mean for _, st in series for _, s in st]
    ylog = yscale == "log" or (yscale is None and _wants_log(y, means))
    pos = np.array(sorted(set(where.values())), float)
    xlog = not categorical and (
        xscale == "log" or (xscale is None and (pos > 0).all() and pos.max() / pos.min() >= 100)
    )
    fig, ax = _new()
    xs = _Axis(x, log=False).fit(pos)
    ys = _Axis(y, log=ylog).fit(means)
    for g, st in series:
        _plot(ax, g, [p for p, _ in st], [s.mean for _, s in st], None, [s.std for _, s in st], xs, ys, line=True)
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
        _log_ticks(ax, "y")
    _setting_ticks(ax, names, where, categorical, pos, xlog)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    _titles(
        fig,
        ax,
        title or f"{axis_label(y)} vs {axis_label(x)}",
        [_context(df, label_keys), _spread_note([s.n for _, st in series for _, s in st]), *ys.note()],
    )
    _legend(ax, legend_title)
    _declutter(fig)
    return fig


def metric_vs(
    df: pd.DataFrame,
    x: str,
    y: str,
    label_keys: list[str],
    stem: Path,
    title: str = "",
    *,
    xscale: str | None = None,
    yscale: str | None = None,
) -> list[Path]:
    return _saved(draw_metric_vs(df, x, y, label_keys, title, xscale=xscale, yscale=yscale), stem)
