"""Aggregated numbers -> the cells of a table: one precision per column, the spread over seeds (std
or a 95% t-interval), a single run's own interval, bound and few-pairs marks, and which cells are
their group's best. Which way is better comes only from the key registry; reference rows (the
retrain oracle, published values) and reference columns are never marked best."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from unlearn.metrics.keys import KeyInfo

from .aggregate import FLOORED
from .records_load import FEW_PAIRS

ORACLE_METHOD = "retrain"  # the method whose rows are the retrain oracle: a reference row
PUBLISHED = "published"  # a row flag: values transcribed from a paper, a reference row
SIG_DIGITS = 3  # significant digits of a column's largest magnitude
MIN_SIG_DIGITS = 2  # ... and of its smallest, within EXTRA_DECIMALS more decimals
EXTRA_DECIMALS = 2
MAX_DECIMALS = 6  # a column that would need more is written in scientific notation

# what the number after ± is, by the `interval` a table asks for
INTERVALS = {
    "std": "std over seeds",
    "ci95": "half-width of the 95% t-interval over seeds, t(0.975, n-1)·s/√n",
}


@dataclass(frozen=True)
class Digits:
    """One column's number format: fixed decimals, or scientific notation (`decimals` None)."""

    decimals: int | None

    def __call__(self, x: float) -> str:
        if self.decimals is None:
            return f"{x:.{SIG_DIGITS - 1}e}" if x != 0 else "0"
        return f"{x:.{self.decimals}f}"


def column_digits(means, n=None) -> Digits:
    """Counts (every seed's value a whole number: each mean times its n is whole) without decimals,
    or one where a mean over seeds falls between. Otherwise SIG_DIGITS significant digits of the
    column's largest magnitude, and up to EXTRA_DECIMALS more so that its smallest nonzero value
    keeps MIN_SIG_DIGITS (0.16 beside 162.13 rather than 0 beside 162). A column's every row, and
    its spreads, use the one format."""
    means = np.asarray(means, dtype=float)
    n = np.ones(len(means)) if n is None else np.maximum(np.asarray(n, dtype=float), 1)
    keep = np.isfinite(means)
    values, totals = means[keep], (means * n)[keep]
    if len(values) == 0:
        return Digits(0)
    if np.allclose(totals, np.round(totals), rtol=0, atol=1e-9):
        return Digits(0 if np.all(values == np.round(values)) else 1)
    magnitudes = np.abs(values[values != 0])
    top = max(0, SIG_DIGITS - 1 - math.floor(math.log10(magnitudes.max())))
    small = max(0, MIN_SIG_DIGITS - 1 - math.floor(math.log10(magnitudes.min())))
    decimals = max(top, min(small, top + EXTRA_DECIMALS))
    return Digits(decimals) if decimals <= MAX_DECIMALS else Digits(None)


@dataclass
class Cell:
    """One cell's parts; renderers join them (Markdown and LaTeX mark bold and ± their own way)."""

    value: str = "-"
    spread: str = ""  # the number after ±
    bounds: tuple[str, str] | None = None  # a single run's own 95% interval
    at_least: bool = False  # the value is a lower bound (e.g. speedup past the timer floor)
    few_pairs: bool = False  # MIA on fewer than MIN_PAIRS pairs a side
    best: bool = False


def published_rows(agg: pd.DataFrame) -> np.ndarray:
    """True for the rows of values transcribed from a paper (the `published` flag)."""
    if PUBLISHED not in agg:
        return np.zeros(len(agg), dtype=bool)
    return agg[PUBLISHED].to_numpy(dtype=object) == True  # noqa: E712  (NaN and False: our runs)


def reference_rows(agg: pd.DataFrame) -> np.ndarray:
    """True for the rows no method is compared with: the retrain oracle and published values."""
    ref = published_rows(agg)
    if "method" in agg.index.names:
        ref = ref | (agg.index.get_level_values("method") == ORACLE_METHOD)
    return ref


def group_levels(index: pd.Index) -> list[str]:
    """The index levels a column's best is marked within: those before `method` (a table of
    methods per dataset and sub-model marks each one's best); without a method level, the dataset
    (values of two datasets are not compared); else none (one group)."""
    names = list(index.names)
    if "method" in names:
        return names[: names.index("method")]
    return ["dataset"] if "dataset" in names else []


def best_groups(index: pd.Index) -> list[np.ndarray]:
    """Row positions of each group of `group_levels`."""
    levels = group_levels(index)
    if not levels:
        return [np.arange(len(index))]
    positions = pd.Series(np.arange(len(index)), index=index)
    return list(positions.groupby(level=levels, sort=False).indices.values())


def best_mask(agg: pd.DataFrame, column: str, info: KeyInfo | None, reference: np.ndarray) -> np.ndarray:
    """True where `column`'s value is the best of its group among the method rows. Nothing for a
    key nobody declared, a key without a better direction, or a reference column; a group needs two
    method rows with a value."""
    best = np.zeros(len(agg), dtype=bool)
    if info is None or info.better is None or info.reference:
        return best
    means = agg[column].to_numpy(dtype=float)
    for rows in best_groups(agg.index):
        rows = rows[~reference[rows] & ~np.isnan(means[rows])]
        if len(rows) < 2:
            continue
        target = means[rows].max() if info.better == "higher" else means[rows].min()
        best[rows[np.isclose(means[rows], target, rtol=1e-12, atol=0)]] = True
    return best


def column_cells(
    agg: pd.DataFrame, column: str, info: KeyInfo | None, reference: np.ndarray, interval: str = "std"
) -> list[Cell]:
    """The cells of one column. The spread is the std (`interval="std"`) or the 95% t-interval's
    half-width (`"ci95"`) over two or more seeds; one seed shows its record's own interval."""
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval '{interval}'. Valid: {', '.join(INTERVALS)}.")
    means = agg[column]
    n = agg["n"].to_numpy() if "n" in agg else np.ones(len(agg))
    low, high = agg.get(f"{column}.ci95.low"), agg.get(f"{column}.ci95.high")
    if interval == "std":
        spread = agg.get(f"{column}.std")
    else:
        spread = (high - low) / 2 if low is not None and high is not None else None
    spread = spread.where(n >= 2) if spread is not None else pd.Series(np.nan, index=agg.index)
    fmt = column_digits(means, n)
    best = best_mask(agg, column, info, reference)
    floored = agg.get(f"{column}{FLOORED}")
    few = agg.get(FEW_PAIRS) if column.startswith("mia") else None
    cells = []
    for i, m in enumerate(means):
        if pd.isna(m):
            cells.append(Cell())
            continue
        cell = Cell(value=fmt(m), best=bool(best[i]))
        if pd.notna(spread.iloc[i]):
            cell.spread = fmt(spread.iloc[i])
        elif n[i] == 1 and low is not None and high is not None and pd.notna(low.iloc[i]) and pd.notna(high.iloc[i]):
            cell.bounds = (fmt(low.iloc[i]), fmt(high.iloc[i]))
        cell.at_least = bool(floored is not None and pd.notna(floored.iloc[i]) and floored.iloc[i] > 0)
        cell.few_pairs = bool(few is not None and pd.notna(few.iloc[i]) and few.iloc[i] > 0)
        cells.append(cell)
    return cells
