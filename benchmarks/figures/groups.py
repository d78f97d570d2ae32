"""Records split into the groups a figure draws (one per legend entry, the retrain oracle last),
with their colours and markers, and the statistics over seeds each point or line shows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .labels import _METHOD_ONLY, ORACLE, ORACLE_METHOD, _entry, _legend_title, _natural, _num, _short, _text

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "d")


@dataclass
class _Group:
    label: str
    rows: pd.DataFrame
    oracle: bool = False
    method: str = ""
    color: object = "k"
    marker: str = "*"
    dash: str = "--"

    def style(self, line: bool) -> dict:
        if self.oracle:
            return dict(color=self.color, marker="*", markersize=13, linestyle=self.dash if line else "none", zorder=4)
        return dict(color=self.color, marker=self.marker, markersize=7, linestyle="-" if line else "none")


def _groups(df: pd.DataFrame, label_keys: list[str]) -> tuple[list[_Group], str]:
    """`df` split by `label_keys`, each group labelled by the settings that differ between groups,
    with colours and per-method markers; the legend title. Method `retrain` is the oracle (last)."""
    keys = [k for k in dict.fromkeys(label_keys) if k in df]
    text = df[keys].map(_text) if keys else pd.DataFrame(index=df.index)
    varying = [k for k in keys if text[k].nunique() > 1]
    methods = df["method"].map(_text).unique() if "method" in df else []
    fixed_method = methods[0] if len(methods) == 1 and "method" not in varying else None
    # what tells the methods apart: the oracle's own settings (1 shard, no partitioner) do not count
    is_oracle = df["method"].map(_text).eq(ORACLE_METHOD).to_numpy() if "method" in df else np.zeros(len(df), bool)
    others = text[~is_oracle] if (~is_oracle).any() else text
    shown = [k for k in varying if k == "method" or others[k].nunique() > 1]
    groups = []
    if varying:
        for values, pos in text.groupby(varying, sort=False).indices.items():
            values = dict(zip(varying, values if isinstance(values, tuple) else (values,)))
            rows = df.iloc[pos]
            method = values.get("method", fixed_method or "")
            oracle = method == ORACLE_METHOD
            label = _entry(
                {k: v for k, v in values.items() if k in shown or (oracle and k not in _METHOD_ONLY)}, oracle
            )
            groups.append(_Group(label, rows, oracle, method))
        order = {id(g): tuple(_natural(_text(g.rows[k].iloc[0])) for k in varying) for g in groups}
        groups.sort(key=lambda g: (g.oracle, order[id(g)]))
    else:
        oracle = fixed_method == ORACLE_METHOD
        groups = [_Group(ORACLE if oracle else (fixed_method or "all runs"), df, oracle, fixed_method or "")]
    for label in {g.label for g in groups}:  # told apart only by a setting left out: name it
        same = [g for g in groups if g.label == label]
        if len(same) > 1:
            apart = [k for k in varying if len({_text(g.rows[k].iloc[0]) for g in same}) > 1]
            for g in same:
                g.label += " [" + ", ".join(f"{_short(k)}={_text(g.rows[k].iloc[0])}" for k in apart) + "]"
    _paint(groups)
    return groups, _legend_title(shown, fixed_method)


_ORACLE_SHADES = tuple((c, d) for d in ("--", "-.", ":") for c in ("k", "0.45", "0.7"))


def _paint(groups: list[_Group]) -> None:
    """A colour per group, a marker per method; oracles are black stars on dashed lines (greys and
    other dashes where several settings each have one)."""
    many = sum(not g.oracle for g in groups) > 9
    colors = [
        c
        for i, c in enumerate(plt.get_cmap("tab20" if many else "tab10").colors)
        if i not in ((14, 15) if many else (7,))
    ]  # no grey: greys are the oracle's
    markers: dict[str, str] = {}
    i = j = 0
    for g in groups:
        if g.oracle:
            g.color, g.dash = _ORACLE_SHADES[j % len(_ORACLE_SHADES)]
            j += 1
            continue
        g.color = colors[i % len(colors)]
        g.marker = markers.setdefault(g.method, MARKERS[len(markers) % len(MARKERS)])
        i += 1


def _oracle_groups(df: pd.DataFrame, label_keys: list[str], columns: dict[str, str]) -> list[_Group]:
    """The retrain oracle every record carries (`retrain.*`, `retrain_s`), as groups of their own:
    `columns` maps a plotted column to the oracle's column. One group per setting the oracle shares
    (dataset, sub-model, deletion); a seed's oracle is one sample however many records repeat it."""
    if not all(src in df for src in columns.values()):
        return []
    odf = df.assign(**{dst: df[src] for dst, src in columns.items()})
    keys = [k for k in label_keys if k in df and k != "method" and k not in _METHOD_ONLY and not k.startswith("cfg.")]
    text = odf[keys].map(_text) if keys else pd.DataFrame(index=odf.index)
    varying = [k for k in keys if text[k].nunique() > 1]
    if not varying:
        return [_Group(ORACLE, odf, True, ORACLE_METHOD)]
    return [
        _Group(
            _entry(dict(zip(varying, v if isinstance(v, tuple) else (v,))), True), odf.iloc[pos], True, ORACLE_METHOD
        )
        for v, pos in sorted(text.groupby(varying, sort=False).indices.items())
    ]


def _per_seed(rows: pd.DataFrame, col: str) -> np.ndarray:
    """One value per seed: runs of one seed are averaged first."""
    v = _num(rows, col)
    if "seed" in rows:
        v = v.groupby(rows["seed"].map(_text)).mean()
    return v.dropna().to_numpy(float)


@dataclass
class _Stat:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0


def _stat(values: np.ndarray) -> _Stat:
    if not len(values):
        return _Stat()
    with np.errstate(invalid="ignore"):
        std = float(np.std(values, ddof=1)) if len(values) > 1 and np.isfinite(values).all() else math.nan
    return _Stat(float(np.mean(values)), std, len(values))


def _spread_note(ns: list[int], bars: str = "") -> str:
    """What a point is and what its error bar shows (`bars`: where the bars are, e.g. both axes)."""
    ns = [n for n in ns if n > 0]
    if not ns:
        return ""
    lo, hi = min(ns), max(ns)
    if hi <= 1:
        return "one seed each: no error bars"
    seeds = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return (
        f"mean ± std over {seeds} seeds"
        + (f" (bars on {bars})" if bars else "")
        + ("; one seed: no bar" if lo == 1 else "")
    )
