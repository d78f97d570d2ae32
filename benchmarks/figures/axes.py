"""How an axis shows a key: its scale, where it draws values it cannot show (hollow markers at a
floor or ceiling, named in the note), and tick labels that do not crowd or overlap."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from . import _is_time

_TIMER_FLOOR_S = 1e-3  # used when unlearn.metrics.timing declares none


def _timer_floor() -> float:
    """The clocks' resolution: a timed region shorter than it counts as this long."""
    try:
        from unlearn.metrics import timing
    except ImportError:
        return _TIMER_FLOOR_S
    return float(getattr(timing, "TIMER_FLOOR_S", _TIMER_FLOOR_S))


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
