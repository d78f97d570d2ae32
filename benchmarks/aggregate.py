"""Records -> one row per setting: the mean over seeds of every shown key, its standard deviation,
its 95% interval and the number of seeds. Row labels are text ('-' for a setting a record lacks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .records_load import FEW_PAIRS

GROUP_KEYS = [
    "dataset",
    "method",
    "submodel",
    "partitioner",
    "aggregator",
    "n_shards",
    "deletion.unit",
    "deletion.selection",
    "deletion.ratio",
    "deletion.count",
    "deletion.rounds",
]
FLOORED = ".floored"  # `<key>.floored` true: the record's value is a bound (e.g. speedup past the timer floor)


def label(value) -> str:
    """A row label: '-' for a missing setting, 100 rather than 100.0 for a whole number."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def t_quantile(df: np.ndarray) -> np.ndarray:
    """t(0.975, df): the two-sided 95% quantile of Student's t."""
    from scipy.stats import t  # scipy comes with POT

    return t.ppf(0.975, df)


def aggregate(df: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """One row per group of `rows`, for every key `c` of `columns` the records hold: `c` (mean over
    seeds), `c.std` (sample std), `c.ci95.low` / `c.ci95.high` and `n` (seeds). With two or more
    seeds the interval is the t-interval mean ± t(0.975, n-1)·std/√n over the seeds that have a
    value; a single seed keeps its record's own interval (`c.ci95` in the record, e.g. a bootstrap
    over pairs or users) where it has one. `c.floored` (1 where any seed's value was a bound) and
    the MIA few-pairs flag come along where the records hold them."""
    rows = [r for r in rows if r in df]
    columns = [c for c in dict.fromkeys(columns) if c in df]
    if not rows or not columns or df.empty:
        return pd.DataFrame()
    bounds = [f"{c}.ci95.{end}" for c in columns for end in ("low", "high") if f"{c}.ci95.{end}" in df]
    flags = [f for f in [f"{c}{FLOORED}" for c in columns] + [FEW_PAIRS] if f in df]
    numeric = [*columns, *bounds, *flags]
    keyed = df[rows].map(label)
    values = df[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    table = pd.concat([keyed, values], axis=1)
    how = {c: "mean" for c in [*columns, *bounds]} | {f: "max" for f in flags}
    if "seed" in df and "seed" not in rows:
        # runs of one seed that differ only in what is measured (e.g. with and without the exact
        # replica) are one sample: average them first, so n counts seeds
        table = table.assign(seed=df["seed"].map(label)).groupby([*rows, "seed"], sort=True).agg(how).reset_index()
    grouped = table.groupby(rows, sort=True, dropna=False)
    mean, std, count = grouped[columns].mean(), grouped[columns].std(ddof=1), grouped[columns].count()
    extra = {k: v for k, v in how.items() if k not in columns}
    carried = grouped.agg(extra) if extra else pd.DataFrame(index=mean.index)
    out = {}
    for c in columns:
        out[c], out[f"{c}.std"] = mean[c], std[c]
        low = carried[f"{c}.ci95.low"] if f"{c}.ci95.low" in carried else np.nan
        high = carried[f"{c}.ci95.high"] if f"{c}.ci95.high" in carried else np.nan
        k = count[c].to_numpy(dtype=float)
        several = k >= 2
        half = np.full(len(k), np.nan)
        half[several] = t_quantile(k[several] - 1) * std[c].to_numpy()[several] / np.sqrt(k[several])
        single = k == 1
        out[f"{c}.ci95.low"] = np.where(several, mean[c] - half, np.where(single, low, np.nan))
        out[f"{c}.ci95.high"] = np.where(several, mean[c] + half, np.where(single, high, np.nan))
    out["n"] = grouped.size()
    out.update({f: carried[f] for f in flags})
    out = pd.DataFrame(out, index=mean.index)
    return out.sort_index(key=_natural)  # K = 5, 10, 20 rather than 10, 20, 5


def _natural(level: pd.Index) -> pd.Index:
    """Sort key of one row level: numbers by value when every label is a number (or '-')."""
    try:
        return pd.Index([-np.inf if v == "-" else float(v) for v in level])
    except (TypeError, ValueError):
        return level


def varying(df: pd.DataFrame, keys: list[str]) -> tuple[list[str], dict]:
    """Group keys that vary across records (with the settings that tell variants apart, see
    `with_variants`), and the fixed values of the others."""
    present = [k for k in keys if k in df]
    vary = [k for k in present if df[k].map(label).nunique() > 1]
    fixed = {k: df[k].iloc[0] for k in present if k not in vary and pd.notna(df[k].iloc[0])}
    return with_variants(df, vary or present[:1]), fixed


def with_variants(df: pd.DataFrame, rows: list[str]) -> list[str]:
    """`rows` plus every setting (`cfg.*`) that differs between records the rows alone would
    average together (two variants of one method), so seeds are the only thing averaged."""
    rows = [r for r in rows if r in df]
    if not rows:
        return rows
    for col in sorted(c for c in df.columns if c.startswith("cfg.") and c not in rows):
        # a setting a method does not have is missing (NaN): a group key and a value of its own
        if df[[*rows, col]].map(label).groupby(rows)[col].nunique().max() > 1:
            rows.append(col)  # later settings are compared within the finer groups
    return rows
