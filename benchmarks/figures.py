"""Figures from result records, as PNG (150 dpi) and PDF.

Every point and line is a mean over seeds with one standard deviation either side as its error bar
(runs of one seed that differ only in what they measure are averaged first, so n counts seeds); the
figure's note says so. Groups are labelled by method plus only the settings that tell them apart
(`sisa (10 shards)`, `receraser ubp/attention`), in a titled legend outside the axes; markers are
per method. The retrain oracle is the reference: a black star or dashed line, `retrain (oracle)`.
Axis labels come from the key registry (`unlearn.metrics.keys.KEYS`), the raw key where nothing
declares it. A value a log axis cannot show (<= 0, infinite) is drawn at a floor or ceiling as a
hollow marker and named in the note, so no run vanishes from a plot.

`draw_*` build a figure and return it (None when the records hold nothing to draw); the functions
of the same name without the prefix draw and save it (`<stem>.png`, `<stem>.pdf`)."""

from __future__ import annotations

import json
import math
import re
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 150
ORACLE = "retrain (oracle)"
ORACLE_METHOD = "retrain"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "d")
_EMPTY = {"", "-", "none", "null", "nan", "None", "NaN"}  # a setting a group does not have
# settings shown as a bare value (`receraser ubp/attention`), and those shown with their name
_BARE = ("dataset", "submodel", "partitioner", "aggregator", "deletion.unit", "deletion.selection")
_NAMED = {
    "n_shards": ("{} shards", "{} shard", "shards"),
    "deletion.ratio": ("ratio {}", "ratio {}", "deletion ratio"),
    "deletion.count": ("{} deleted", "{} deleted", "deleted"),
    "deletion.rounds": ("{} rounds", "{} round", "rounds"),
    "n_forget_users": ("{} users forgotten", "{} user forgotten", "users forgotten"),
}
_METHOD_ONLY = ("partitioner", "aggregator", "n_shards")  # settings the retrain oracle has none of
_TIMER_FLOOR_S = 1e-3  # used when unlearn.metrics.timing declares none


# ---------------------------------------------------------------- keys, values, labels


def _key_info(key: str):
    """The key's registry entry, or None. Importing `unlearn` makes its modules declare their keys."""
    try:
        import unlearn  # noqa: F401
        from unlearn.metrics.keys import KEYS
    except ImportError:
        return None
    return KEYS.get(key)


def axis_label(key: str) -> str:
    """A key's header from the registry (`NDCG@20 after`, `unlearn time (s)`), else the key."""
    info = _key_info(key)
    return info.header if info is not None else key


def _is_time(key: str) -> bool:
    info = _key_info(key)
    if info is not None and info.unit:
        return info.unit == "s"
    return bool(re.search(r"_s(\.p\d+)?$", key))


def _timer_floor() -> float:
    """The clocks' resolution: a timed region shorter than it counts as this long."""
    try:
        from unlearn.metrics import timing
    except ImportError:
        return _TIMER_FLOOR_S
    return float(getattr(timing, "TIMER_FLOOR_S", _TIMER_FLOOR_S))


def _text(value) -> str:
    """A setting as text: '-' where missing, 100 rather than 100.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{float(value):g}"
    return str(value)


def _natural(value: str):
    """Sort key: numbers by value before words."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _num(df, col):
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _part(key: str, value: str) -> tuple[str, bool]:
    """(text, bare): how one setting reads in a legend entry."""
    if key in _NAMED:
        many, one, _ = _NAMED[key]
        return (one if value == "1" else many).format(value), False
    if key in _BARE:
        return value, True
    return f"{_short(key)}={value}", False


def _compose(head: str, bare: list[str], named: list[str]) -> str:
    text = " ".join(p for p in (head, "/".join(bare)) if p)
    if named:
        text = f"{text} ({', '.join(named)})" if text else ", ".join(named)
    return text


def _entry(values: dict[str, str], oracle: bool) -> str:
    """One legend entry: the method, then the settings of `values` it has (none of `none` / `-`)."""
    bare, named = [], []
    for key, value in values.items():
        if key == "method" or value in _EMPTY or (oracle and (key in _METHOD_ONLY or key.startswith("cfg."))):
            continue
        text, is_bare = _part(key, value)
        (bare if is_bare else named).append(text)
    if oracle:
        rest = _compose("", bare, named)
        return f"{ORACLE}, {rest}" if rest else ORACLE
    return _compose(values.get("method", ""), bare, named)


def _legend_title(varying: list[str], method: str | None) -> str:
    """What the legend's entries show, in the entries' own layout (`method partitioner/aggregator (shards)`)."""
    bare = [k.replace(".", " ") for k in varying if k in _BARE]
    named = [_NAMED[k][2] if k in _NAMED else _short(k) for k in varying if k != "method" and k not in _BARE]
    head = "method" if "method" in varying else ""
    rest = _compose(head, bare, named)
    if method:
        return f"{method}: {rest}" if rest else method
    return rest or "runs"


# ---------------------------------------------------------------- groups and statistics


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


# ---------------------------------------------------------------- axes: scales, clipping, ticks


def _sci(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


@dataclass
class _Axis:
    """How one axis shows a key: its scale, and where it draws values it cannot show (a value <= 0
    on a log axis at `floor`, an infinite one at `ceil`), as hollow markers named in the note."""

    key: str
    log: bool
    floor: float = math.nan
    ceil: float = math.nan
    clipped_low: bool = False
    clipped_high: bool = False

    def fit(self, values) -> "_Axis":
        v = np.asarray([x for x in np.ravel(values) if not np.isnan(x)], dtype=float)
        finite = v[np.isfinite(v)]
        pos = finite[finite > 0]
        if self.log:
            self.floor = pos.min() / 10 if len(pos) else 1.0
            if _is_time(self.key) and (not len(pos) or pos.min() >= _timer_floor()):
                self.floor = _timer_floor()
            self.ceil = pos.max() * 10 if len(pos) else self.floor * 100
        else:
            lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
            pad = 0.1 * ((hi - lo) or abs(hi) or 1.0)
            self.floor, self.ceil = lo - pad, hi + pad
        return self

    def show(self, values) -> tuple[np.ndarray, np.ndarray]:
        """(positions to draw, which of them are clipped)."""
        v = np.asarray(values, dtype=float)
        low = (v == -np.inf) | ((v <= 0) if self.log else np.zeros(v.shape, bool))
        high = v == np.inf
        self.clipped_low |= bool(low.any())
        self.clipped_high |= bool(high.any())
        return np.where(low, self.floor, np.where(high, self.ceil, v)), low | high

    def note(self) -> list[str]:
        unit = " s" if _is_time(self.key) else ""
        out = []
        if self.clipped_low:
            what = "0 s" if unit and self.log else ("≤ 0" if self.log else "-∞")
            floor = f"{_sci(self.floor)}{unit}" + (" (timer floor)" if unit and self.floor == _timer_floor() else "")
            out.append(f"hollow: {what} drawn at {floor}")
        if self.clipped_high:
            out.append(f"hollow: ∞ drawn at {_sci(self.ceil) if self.log else f'{self.ceil:.3g}'}{unit}")
        return out


def _wants_log(key: str, values) -> bool:
    """Log scale for seconds and speedups spread over more than a decade."""
    if not (_is_time(key) or "speedup" in key):
        return False
    v = np.asarray(values, dtype=float)
    pos = v[np.isfinite(v) & (v > 0)]
    return len(pos) > 1 and pos.max() / pos.min() > 10


def _log_ticks(ax, which: str) -> None:
    """Labelled ticks a log axis can hold without crowding: decades where the view spans two or
    more, else 1-2-5 steps (the view widened to hold two of them); minor ticks unlabelled."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    get, put = (ax.get_xlim, ax.set_xlim) if which == "x" else (ax.get_ylim, ax.set_ylim)
    lo, hi = get()
    if not (lo > 0 and hi > lo):
        return
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**e for e in range(e0, e1 + 1) if lo <= 10.0**e <= hi]
    if len(decades) >= 2:
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=7))
        axis.set_major_formatter(ticker.LogFormatterSciNotation())
    else:
        steps = sorted(m * 10.0**e for e in range(e0 - 1, e1 + 1) for m in (1, 2, 5))
        inside = [t for t in steps if lo <= t <= hi]
        if len(inside) < 2:
            lo = max([t for t in steps if t <= lo], default=lo)
            hi = min([t for t in steps if t >= hi], default=hi)
            put(lo, hi)
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
        # every tick the locator places gets its label (by default some 1-2-5 steps would not)
        axis.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    axis.set_minor_formatter(ticker.NullFormatter())


def _symlog_ticks(ax, linthresh: float) -> None:
    """Labelled y ticks of a symlog axis: decades where the view holds two or more beyond the
    linear band, else 1-2-5 steps too; minor ticks unlabelled."""
    lo, hi = ax.get_ylim()
    top = max(abs(lo), abs(hi))
    decades = (
        sum(
            1
            for e in range(math.floor(math.log10(linthresh)), math.ceil(math.log10(top)) + 1)
            if linthresh < 10.0**e <= top
        )
        if top > linthresh
        else 0
    )
    subs = None if decades >= 2 else (1.0, 2.0, 5.0)
    ax.yaxis.set_major_locator(ticker.SymmetricalLogLocator(base=10, linthresh=linthresh, subs=subs))
    ax.yaxis.set_major_formatter(
        ticker.LogFormatterSciNotation(labelOnlyBase=subs is None, minor_thresholds=(np.inf, np.inf))
    )
    ax.yaxis.set_minor_locator(ticker.SymmetricalLogLocator(base=10, linthresh=linthresh, subs=range(2, 10)))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _value_ticks(ax, which: str, positions, labels) -> None:
    """Ticks at the values a setting takes (shards, ratios, K), labelled as the records spell them."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(ticker.FixedLocator(list(positions)))
    axis.set_major_formatter(ticker.FixedFormatter(list(labels)))
    axis.set_minor_locator(ticker.NullLocator())


def _declutter(fig: Figure) -> None:
    """Drop tick labels that would overlap their neighbour (each axis keeps the first of a
    crowded pair); minor labels go first. Runs after the layout, so on the sizes as drawn."""
    fig.canvas.draw()
    for ax in fig.axes:
        for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            minor = [t for t in axis.get_ticklabels(minor=True) if t.get_visible() and t.get_text()]
            if minor:
                major = [t.get_window_extent() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                boxes = [t.get_window_extent() for t in minor]
                if _overlaps(major + boxes):
                    axis.set_minor_formatter(ticker.NullFormatter())
            lim = ax.get_xlim() if which == "x" else ax.get_ylim()
            lo, hi = min(lim), max(lim)
            ticks = [
                (loc, t)
                for loc, t in zip(axis.get_majorticklocs(), axis.get_ticklabels())
                if lo - 1e-12 * abs(hi - lo) <= loc <= hi + 1e-12 * abs(hi - lo) and t.get_text()
            ]
            if not _overlaps([t.get_window_extent() for _, t in ticks]):
                continue
            kept, boxes = [], []
            for loc, t in ticks:
                box = t.get_window_extent()
                if not any(_hit(box, b) for b in boxes):
                    kept.append((loc, t.get_text()))
                    boxes.append(box)
            axis.set_major_locator(ticker.FixedLocator([loc for loc, _ in kept]))
            axis.set_major_formatter(ticker.FixedFormatter([text for _, text in kept]))
            (ax.set_xlim if which == "x" else ax.set_ylim)(lim)
    fig.canvas.draw()


def _hit(a, b, pad: float = 2.0) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _overlaps(boxes) -> bool:
    return any(_hit(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


# ---------------------------------------------------------------- drawing


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


# ---------------------------------------------------------------- the figures


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
    info = _key_info(cols[0])
    ax.set_ylabel(info.header.replace(f"@{ks[0]}", "@K") if info is not None else f"after.{metric}@K")
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
    names = sorted(df[x].map(_text).unique(), key=_natural)
    categorical = any(_natural(n)[0] for n in names if n not in _EMPTY)
    where = {n: i for i, n in enumerate(names)} if categorical else {n: float(n) for n in names if n not in _EMPTY}
    series = []
    for g in groups:
        stats = []
        for name, rows in g.rows.groupby(g.rows[x].map(_text), sort=False):
            if name in where:
                stats.append((where[name], _stat(_per_seed(rows, y))))
        stats = sorted(((p, s) for p, s in stats if s.n), key=lambda t: t[0])
        if stats:
            series.append((g, stats))
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
    labels = names if categorical else [n for n in names if n in where]
    _value_ticks(ax, "x", [where[n] for n in labels], labels)
    if categorical and (len(labels) > 4 or max(map(len, labels)) > 6):
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    if xlog or categorical:
        pad = 0.5 if categorical else None
        ax.set_xlim(*((min(pos) - pad, max(pos) + pad) if categorical else (min(pos) / 1.3, max(pos) * 1.3)))
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


def _last_round(row, trace: np.ndarray) -> np.ndarray:
    """The last request's part of a trace concatenated over requests (each: start, then sweeps)."""
    sweeps = json.loads(row["unlearn.round_sweeps"]) if isinstance(row.get("unlearn.round_sweeps"), str) else None
    return trace[-(sweeps[-1] + 1) :] if sweeps else trace


def _stack(traces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, n) per sweep over traces of any lengths (a shorter trace stopped earlier)."""
    width = max(len(t) for t in traces)
    m = np.full((len(traces), width), np.nan)
    for i, t in enumerate(traces):
        m[i, : len(t)] = t
    n = (~np.isnan(m)).sum(axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sweep only one trace reached
        mean = np.nanmean(m, axis=0)
        std = np.where(n > 1, np.nanstd(m, axis=0, ddof=1) if len(traces) > 1 else np.nan, np.nan)
    return mean, std, n


_PANELS = {
    "objective": "objective excess over the retrain oracle's (relative)",
    "retrain_gap": "||S - S(oracle)||_F / ||S(oracle)||_F (raw scores)",
    "rank_gap": "1 - top-K Jaccard with the oracle (retained users)",
}
_PANEL_TITLES = {"objective": "objective", "retrain_gap": "score distance to the oracle", "rank_gap": "top-K rank gap"}
_WARM = "warm start (Unlearn-ALS)"
_COLD = "cold start (retrain from random factors)"


def draw_convergence(df: pd.DataFrame) -> Figure | None:
    """Unlearn-ALS per sweep, warm start (unlearning) against cold start (retraining from random
    factors, where traced), both against the same target, the retrain oracle (the dashed line at
    0): the objective's excess over the oracle's objective on the final retained data (relative,
    signed: below 0 is a lower objective than the oracle's), the score distance to the oracle and
    the top-K rank gap. Warm traces are the last request's (the oracle is that request's target; a
    cold start runs on the same final data). Lines are means over seeds with std bars; symlog axes
    keep 0 (the oracle) on the plot."""
    panels = [
        (name, f"unlearn.{name}_trace", f"retrain.{name}_trace") for name in _PANELS if f"unlearn.{name}_trace" in df
    ]
    if not panels:
        return None
    traced = df.dropna(subset=[panels[0][1]])
    traced = traced[traced[panels[0][1]].map(lambda v: isinstance(v, str))]
    if traced.empty:
        return None
    context = [k for k in ("dataset", "submodel", "n_forget_users", "deletion.rounds") if k in traced]
    groups, legend_title = _groups(traced.drop(columns="method", errors="ignore"), context)
    for g in groups:  # one context: the entries need not name it
        g.label = "" if len(groups) == 1 else g.label
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels) + 0.6, 4.4), squeeze=False, constrained_layout=True
    )
    ns, against_oracle = [], True
    for ax, (name, warm, cold) in zip(axes[0], panels):
        lines = []
        for g in groups:
            runs = {warm: [], cold: []}
            for _, row in g.rows.iterrows():
                traces = {
                    col: np.asarray(json.loads(row[col]), dtype=float)
                    for col in (warm, cold)
                    if col in row and isinstance(row[col], str)
                }
                traces = {col: _last_round(row, t) if col == warm else t for col, t in traces.items() if len(t)}
                if name == "objective" and traces:
                    target = pd.to_numeric(row.get("unlearn.oracle_objective"), errors="coerce")
                    if pd.isna(target):  # an older record: the best value either run reached
                        target, against_oracle = min(t.min() for t in traces.values()), False
                    traces = {col: (t - target) / abs(target) for col, t in traces.items()}
                for col, t in traces.items():
                    runs[col].append(t)
            for col, kind, ls, marker in ((warm, _WARM, "-", "o"), (cold, _COLD, ":", "s")):
                if runs[col]:
                    mean, std, n = _stack(runs[col])
                    ns += list(n)
                    lines.append(mean)
                    label = f"{kind}, {g.label}" if g.label else kind
                    ax.errorbar(
                        np.arange(len(mean)),
                        mean,
                        yerr=_errors(std, np.zeros(len(std), bool)),
                        color=g.color,
                        linestyle=ls,
                        marker=marker,
                        markersize=3.5,
                        capsize=2,
                        elinewidth=0.8,
                        errorevery=max(1, len(mean) // 15),
                        label=label,
                    )
        ax.axhline(0.0, color="k", linestyle="--", linewidth=1, label=ORACLE, zorder=1)
        values = np.abs(np.concatenate(lines)) if lines else np.array([])
        values = values[np.isfinite(values) & (values > 0)]
        linthresh = 10.0 ** math.floor(math.log10(values.min())) if len(values) else 1e-9
        linthresh = max(linthresh, 1e-12)
        ax.set_yscale("symlog", linthresh=linthresh)
        if len(lines) and np.nanmin(np.concatenate(lines)) >= 0:  # no empty negative half
            ax.set_ylim(bottom=-linthresh / 2)
        _symlog_ticks(ax, linthresh)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=8, integer=True))
        ylabel = (
            _PANELS[name]
            if name != "objective" or against_oracle
            else "objective excess over the best value reached (relative)"
        )
        ax.set_ylabel(textwrap.fill(ylabel, 45), fontsize=9)
        ax.set_xlabel("sweep (0 = starting factors)")
        ax.set_title(_PANEL_TITLES[name], fontsize=10)
    shared = [
        _entry({k: _text(traced[k].iloc[0])}, False)
        for k in context
        if traced[k].map(_text).nunique() == 1 and _text(traced[k].iloc[0]) not in _EMPTY
    ]
    note = "; ".join(p for p in (", ".join(shared), _spread_note(ns), "warm: the last request's sweeps") if p)
    fig.suptitle("Unlearn-ALS convergence to the retrain oracle: warm vs cold start\n" + note, fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == ORACLE)  # the oracle last
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(3, len(handles)),
        fontsize=8,
        title="start" + (f", {legend_title}" if legend_title != "runs" else ""),
        title_fontsize=8,
    )
    _declutter(fig)
    return fig


def convergence(df: pd.DataFrame, stem: Path) -> list[Path]:
    return _saved(draw_convergence(df), stem)
