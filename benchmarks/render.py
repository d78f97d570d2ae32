"""Aggregated rows -> the files of one table: Markdown (one header line per column, a section per
group of keys), LaTeX booktabs (`render_latex`) and CSV (raw record keys, every statistic).
`build` makes the `Table` both renderers read (`layout`).

Headers, directions and reference columns come from the key registry (`unlearn.metrics.keys`); a
key nothing declares keeps its raw name, is never marked best and is named once on stderr. The
caption says what ± and bold mean, which rows and columns are references, and what was left out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn.metrics.keys import KEYS, REFERENCE_STAGES

from .cells import (
    INTERVALS,
    ORACLE_METHOD,
    Cell,
    best_groups,
    column_cells,
    group_levels,
    published_rows,
    reference_rows,
)
from .layout import (
    AT_LEAST_MARK,
    FEW_PAIRS_MARK,
    GROUP_TITLES,
    Column,
    Table,
    by_group,
    row_header,
    unique_headers,
    warn_undeclared,
)
from .records_load import MIN_PAIRS, LeftOut
from .render_latex import latex


def build(
    agg: pd.DataFrame, keys: list[str], title: str, notes=(), interval: str = "std", left_out: LeftOut | None = None
) -> Table:
    """The table of `keys` (those `agg` holds) over `agg`'s rows, with its caption."""
    keys = [k for k in dict.fromkeys(keys) if k in agg]
    undeclared = warn_undeclared(keys)
    columns = [Column(k, KEYS.get(k)) for k in keys]
    reference = reference_rows(agg)
    cells = {c.key: column_cells(agg, c.key, c.info, reference, interval) for c in columns}
    n = ["-" if p else str(int(v)) for p, v in zip(published_rows(agg), agg["n"])]
    rows = [tuple(r) if isinstance(r, tuple) else (r,) for r in agg.index]
    table = Table(
        title, list(agg.index.names), rows, columns, cells, n, breaks={int(g[0]) for g in best_groups(agg.index)} - {0}
    )
    table.legend, table.hints = legend(table, agg, interval, undeclared, left_out, list(notes))
    return table


def legend(
    t: Table, agg: pd.DataFrame, interval: str, undeclared: list[str], left_out: LeftOut | None, notes: list[str]
) -> tuple[list[str], list[str]]:
    """(the caption's sentences, Markdown-only hints): what ± is, the brackets, bold, the reference
    rows and columns, the marks, undeclared headers, what was left out, then the caller's notes."""
    every = [c for cells in t.cells.values() for c in cells]
    several = bool((agg["n"] >= 2).any())
    out, hints = [], []
    if several:
        out.append(f"Mean ± {INTERVALS[interval]}; n: seeds per row.")
        if interval == "std":
            hints.append(
                "95% t-intervals over seeds are in the CSV (`<key>.ci95.low`, `<key>.ci95.high`); "
                "`interval: ci95` in a table spec (or `interval=ci95` to the report) shows them here."
            )
    else:
        out.append("One seed per row (n = 1): no spread over seeds.")
    if any(c.bounds for c in every):
        out.append("[low, high]: a single run's own 95% interval (a bootstrap over its pairs or users).")
    if any(c.best for c in every):
        levels = group_levels(agg.index)
        within = f"within each {' × '.join(row_header(lv) for lv in levels)}" if levels else "over all rows"
        out.append(
            f"Bold: the best method row {within}, in the direction declared for the metric; "
            "reference rows and columns are never bold."
        )
    kinds = []
    if "method" in t.levels and ORACLE_METHOD in agg.index.get_level_values("method"):
        kinds.append(f"{ORACLE_METHOD} (the retrain oracle)")
    if published_rows(agg).any():
        kinds.append("published values")
    if kinds:
        out.append(f"Reference rows: {' and '.join(kinds)}.")
    refs = list(
        dict.fromkeys(f"{c.sub} stage" if c.sub in REFERENCE_STAGES else c.header for c in t.columns if c.reference)
    )
    if refs:
        out.append(f"Reference columns: {', '.join(refs)}.")
    if any(c.at_least for c in every):
        out.append(f"{AT_LEAST_MARK}: a lower bound (a time under the timer's floor was counted as the floor).")
    if any(c.few_pairs for c in every):
        out.append(f"{FEW_PAIRS_MARK}: MIA on fewer than {MIN_PAIRS} pairs a side (MIA pairs).")
    if undeclared:
        out.append(f"Undeclared keys keep their raw names: {', '.join(undeclared)}.")
    if left_out:
        out.append(left_out.note())
    return out + [n for n in notes if n], hints


def md_cell(c: Cell) -> str:
    if c.value == "-":
        return "-"
    text = (AT_LEAST_MARK if c.at_least else "") + c.value + (f" ± {c.spread}" if c.spread else "")
    text = f"**{text}**" if c.best else text
    if c.bounds:
        text += f" [{c.bounds[0]}, {c.bounds[1]}]"
    return text + (f" {FEW_PAIRS_MARK}" if c.few_pairs else "")


def markdown(t: Table) -> str:
    """`## title`, the caption, then one table per group of keys (a heading each when several)."""
    parts = [f"## {t.title}", "", " ".join(t.legend + t.hints), ""]
    groups = by_group(t.columns)
    for group, cols in groups:
        if len(groups) > 1:
            parts += [f"### {GROUP_TITLES[group]}", ""]
        frame = pd.DataFrame(t.rows, columns=t.row_headers)
        for header, col in zip(unique_headers(cols), cols):
            frame[header] = [md_cell(c) for c in t.cells[col.key]]
        frame["n"] = t.n
        align = ("left",) * len(t.levels) + ("right",) * (len(cols) + 1)
        parts += [frame.to_markdown(index=False, colalign=align), ""]
    return "\n".join(parts)


def csv_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregate with raw record keys as column names: every mean, `.std`, `.ci95.low`,
    `.ci95.high`, `n` and the flags."""
    return agg.reset_index()


def write_table(
    agg: pd.DataFrame,
    columns: list[str],
    path_stem: Path,
    title: str,
    notes=(),
    interval: str = "std",
    left_out: LeftOut | None = None,
) -> list[Path]:
    """Writes <stem>.md, <stem>.tex (booktabs) and <stem>.csv; returns the paths."""
    table = build(agg, columns, title, notes, interval, left_out)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [path_stem.with_suffix(".md"), path_stem.with_suffix(".tex"), path_stem.with_suffix(".csv")]
    paths[0].write_text(markdown(table))
    paths[1].write_text(latex(table, path_stem.name))
    csv_frame(agg).to_csv(paths[2], index=False)
    return paths
