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
of the same name without the prefix draw and save it (`<stem>.png`, `<stem>.pdf`).

The package: `labels` (settings as legend text), `groups` (records split into groups, statistics
over seeds), `axes` (scales, clipping, ticks), `drawing` (the shared style: points, notes, legend,
saving), and a module per kind of figure: `tradeoffs` (one point per group), `curves` (a line per
group against K or a setting), `als_convergence` (Unlearn-ALS per sweep). The key-registry
lookups live here, so that `figures._key_info` is the one hook to replace (a test declares keys
through it)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")


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


def _per_k_label(key: str, k: int, fallback: str) -> str:
    """A cut-off key's header with its cut-off as K (`NDCG@K after`), else `fallback`."""
    info = _key_info(key)
    return info.header.replace(f"@{k}", "@K") if info is not None else fallback


# the figures' modules take the lookups above from the package: imported after them
from .als_convergence import convergence, draw_convergence  # noqa: E402
from .curves import draw_metric_vs, draw_metric_vs_k, metric_vs, metric_vs_k  # noqa: E402
from .drawing import DPI  # noqa: E402
from .groups import MARKERS  # noqa: E402
from .labels import ORACLE, ORACLE_METHOD  # noqa: E402
from .tradeoffs import FAMILY_MARKERS, draw_tradeoff, draw_utility_vs_time, tradeoff, utility_vs_time  # noqa: E402

__all__ = [
    "DPI",
    "FAMILY_MARKERS",
    "MARKERS",
    "ORACLE",
    "ORACLE_METHOD",
    "axis_label",
    "convergence",
    "draw_convergence",
    "draw_metric_vs",
    "draw_metric_vs_k",
    "draw_tradeoff",
    "draw_utility_vs_time",
    "metric_vs",
    "metric_vs_k",
    "tradeoff",
    "utility_vs_time",
]
