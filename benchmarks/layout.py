"""What a rendered table holds: its columns with their registry entries (label, sub-label, unit,
group), grouped for display, its row labels, cells and caption sentences. The Markdown and LaTeX
renderers read the same `Table`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import unlearn  # noqa: F401  (imports the library's modules: each declares the keys it computes)
from unlearn.metrics.keys import KEYS, KeyInfo

from . import records  # noqa: F401  (declares the runner's keys: presets, provenance)
from .cells import Cell

GROUP_ORDER = ("utility", "efficiency", "completeness", "other", "identity")
GROUP_TITLES = {
    "utility": "Utility",
    "efficiency": "Efficiency",
    "completeness": "Completeness",
    "other": "Other",
    "identity": "Setting",
}
FEW_PAIRS_MARK = "†"
AT_LEAST_MARK = "≥"
_warned: set[str] = set()


@dataclass(frozen=True)
class Column:
    """A shown key and what the registry says of it (None: undeclared)."""

    key: str
    info: KeyInfo | None

    @property
    def label(self) -> str:
        return self.info.label if self.info else self.key

    @property
    def sub(self) -> str:
        return self.info.sub if self.info else ""

    @property
    def unit(self) -> str:
        return self.info.unit if self.info else ""

    @property
    def group(self) -> str:
        return self.info.group if self.info else "other"

    @property
    def header(self) -> str:
        """One line: label, sub-label and unit (`NDCG@20 after`, `fit time (s)`)."""
        return self.info.header if self.info else self.key

    @property
    def reference(self) -> bool:
        return bool(self.info and self.info.reference)


def warn_undeclared(keys: list[str]) -> list[str]:
    """The keys nothing declares; each is named on stderr once per process."""
    missing = [k for k in keys if KEYS.get(k) is None]
    new = [k for k in missing if k not in _warned]
    if new:
        _warned.update(new)
        print(
            f"note: undeclared record key(s) shown under their raw names, never marked best: {', '.join(new)} "
            "(declare them with KEYS.declare beside the code that computes them)",
            file=sys.stderr,
        )
    return missing


def row_header(level: str) -> str:
    info = KEYS.get(level)
    return info.header if info else level


def by_group(columns: list[Column]) -> list[tuple[str, list[Column]]]:
    """The columns of each group, in GROUP_ORDER, each group's in the order the table lists them
    (adjacent columns sharing a label get one grouped header)."""
    out = []
    for group in GROUP_ORDER:
        cols = [c for c in columns if c.group == group]
        if cols:
            out.append((group, cols))
    return out


@dataclass
class Table:
    """Everything a renderer needs: row labels, columns and their cells, the caption's sentences."""

    title: str
    levels: list[str]  # the row keys (index levels)
    rows: list[tuple[str, ...]]
    columns: list[Column]
    cells: dict[str, list[Cell]]
    n: list[str]
    breaks: set[int] = field(default_factory=set)  # rows that start a new group of compared rows
    legend: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # Markdown only: where to find more

    @property
    def row_headers(self) -> list[str]:
        return [row_header(level) for level in self.levels]


def unique_headers(columns: list[Column]) -> list[str]:
    """One-line headers, with the raw key added where two columns would read the same."""
    headers = [c.header for c in columns]
    return [f"{h} [{c.key}]" if headers.count(h) > 1 else h for h, c in zip(headers, columns)]
