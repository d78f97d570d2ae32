"""Result records -> mean +/- std tables over seeds (Markdown, LaTeX booktabs, CSV)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

MIN_PAIRS = 100  # an MIA cell resting on fewer pairs a side is flagged (dagger)
FEW_PAIRS_MARK = "†"

GROUP_KEYS = ["dataset", "method", "submodel", "partitioner", "aggregator", "n_shards", "deletion.unit",
              "deletion.selection", "deletion.ratio", "deletion.count", "deletion.rounds"]

# which direction is better, by metric name; None: no best (e.g. MIA, where the oracle's value is the target)
_DIRECTIONS = [
    (r"^(mia|forget_hit|seed_floor|untouched|forgotten_collapse)", None),
    (r"partition_drift\.ari", "max"),
    (r"(exact_gap|retrain_gap|retrain_rank_gap|rank_gap_over_floor|partition_drift)", "min"),
    (r"speedup", "max"),
    (r"(_s|_mb)(\.p\d+)?$", "min"),  # seconds and memory, and a stream's percentiles (unlearn_s.p50)
    (r"(recall|ndcg|hr|precision)@", "max"),
]


def direction(metric: str) -> str | None:
    for pattern, d in _DIRECTIONS:
        if re.search(pattern, metric):
            return d
    return None


def load_records(results_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """(ok records as a frame, number of failed records)."""
    rows, failed = [], 0
    for path in sorted(Path(results_dir).glob("runs/*/result.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("status") != "ok":
            failed += 1
            continue
        row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in rec.items()}
        for k, v in rec.items():  # intervals [low, high] (e.g. mia_auc.after.ci95) as two numbers
            if k.endswith(".ci95") and isinstance(v, list) and len(v) == 2:
                row[f"{k}.low"], row[f"{k}.high"] = v
        if "mia_pairs" in rec:
            row["mia_few_pairs"] = float(rec["mia_pairs"] < MIN_PAIRS)
        rows.append(row)
    return pd.DataFrame(rows), failed


def apply_filter(df: pd.DataFrame, flt: dict | None) -> pd.DataFrame:
    for key, want in (flt or {}).items():
        if key not in df:
            return df.iloc[0:0]
        values = want if isinstance(want, list) else [want]
        df = df[df[key].isin(values)]
    return df


def _key(value) -> str:
    """A row label: '-' for a missing setting, 100 rather than 100.0 for a whole number."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def aggregate(df: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """One row per group: <metric> mean, <metric>.std (over seeds) and n (number of seeds)."""
    rows = [r for r in rows if r in df]
    columns = [c for c in columns if c in df]
    if not rows or not columns or df.empty:
        return pd.DataFrame()
    keyed = df[rows].map(_key)
    values = df[columns].apply(pd.to_numeric, errors="coerce")
    table = pd.concat([keyed, values], axis=1)
    if "seed" in df and "seed" not in rows:
        # runs of one seed that differ only in what is measured (e.g. with and without the exact
        # replica) are one sample: average them first, so n counts seeds
        table = table.assign(seed=df["seed"].map(_key)).groupby([*rows, "seed"], sort=True)[columns].mean()
        table = table.reset_index()
    grouped = table.groupby(rows, sort=True, dropna=False)
    mean, std = grouped[columns].mean(), grouped[columns].std(ddof=1)
    out = mean.copy()
    for c in columns:
        out[f"{c}.std"] = std[c]
    out["n"] = grouped.size()
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
    vary = [k for k in present if df[k].map(_key).nunique() > 1]
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
        if df[[*rows, col]].map(_key).groupby(rows)[col].nunique().max() > 1:
            rows.append(col)  # later settings are compared within the finer groups
    return rows


COUNTS = ("untouched_shards", "mia_pairs", "n_shards_retrained")  # printed without decimals when whole


def _fmt(mean: float, std: float, pm: str, count: bool = False) -> str:
    if pd.isna(mean):
        return "-"
    digits = 0 if count and float(mean).is_integer() and (pd.isna(std) or float(std).is_integer()) else (
        4 if abs(mean) < 100 else 1)
    text = f"{mean:.{digits}f}"
    if pd.notna(std):
        text += f" {pm} {std:.{digits}f}"
    return text


def interval_columns(columns: list[str]) -> list[str]:
    """The helper columns `_cells` reads to annotate `columns`: interval bounds and the few-pairs flag."""
    extra = [f"{c}.ci95.{end}" for c in columns for end in ("low", "high")]
    return extra + (["mia_few_pairs"] if any(c.startswith("mia") for c in columns) else [])


def _annotate(text: str, row: pd.Series, c: str) -> str:
    """A single seed's bootstrap interval after its value; over seeds the cell stays mean ± std.
    MIA cells resting on fewer than MIN_PAIRS pairs a side get a dagger."""
    low, high = row.get(f"{c}.ci95.low"), row.get(f"{c}.ci95.high")
    if row.get("n") == 1 and pd.notna(low) and pd.notna(high) and text != "-":
        text += f" [{low:.2f}, {high:.2f}]"
    if c.startswith("mia") and pd.notna(row.get("mia_few_pairs")) and row.get("mia_few_pairs") > 0 and text != "-":
        text += f" {FEW_PAIRS_MARK}"
    return text


def _best_groups(agg: pd.DataFrame) -> list:
    """The row groups a column's best is marked within: the rows sharing the index levels before
    `method` (a table of methods per dataset and sub-model marks each one's best), else every row."""
    names = list(agg.index.names)
    if "method" not in names or names.index("method") == 0:
        return [np.arange(len(agg))]
    positions = pd.Series(np.arange(len(agg)), index=agg.index)
    return list(positions.groupby(level=names[: names.index("method")], sort=False).indices.values())


def _cells(agg: pd.DataFrame, columns: list[str], pm: str, bold) -> pd.DataFrame:
    cols = [c for c in columns if c in agg]
    out = pd.DataFrame(index=agg.index)
    groups = _best_groups(agg)
    for c in cols:
        texts = [_fmt(m, s, pm, c in COUNTS) for m, s in zip(agg[c], agg[f"{c}.std"])]
        d = direction(c)
        for rows in groups if d else []:
            values = agg[c].iloc[rows]
            if values.notna().sum() < 2:
                continue
            best = values.max() if d == "max" else values.min()
            for i, m in zip(rows, values):
                if pd.notna(m) and np.isclose(m, best, rtol=1e-12, atol=0):
                    texts[i] = bold(texts[i])
        out[c] = [_annotate(t, row, c) for t, (_, row) in zip(texts, agg.iterrows())]
    out["n"] = agg["n"].astype(int)
    return out


def _latex_escape(s: str) -> str:
    return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")


def write_table(agg: pd.DataFrame, columns: list[str], path_stem: Path, title: str, caption: str = "") -> list[Path]:
    """Writes <stem>.md, <stem>.tex (booktabs) and <stem>.csv; returns the paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    md_cells = _cells(agg, columns, "±", lambda t: f"**{t}**").reset_index()
    md = f"## {title}\n\n" + (f"{caption}\n\n" if caption else "") + md_cells.to_markdown(index=False) + "\n"
    tex_cells = _cells(agg, columns, r"$\pm$", lambda t: rf"\textbf{{{t}}}").reset_index()
    tex_cells.columns = [_latex_escape(c) for c in tex_cells.columns]
    for c in tex_cells.columns[: agg.index.nlevels]:
        tex_cells[c] = tex_cells[c].map(_latex_escape)
    tex = tex_cells.style.hide(axis="index").to_latex(
        hrules=True, caption=_latex_escape(f"{title}. {caption}".strip(". ")).replace("±", r"$\pm$"), position="t")
    paths = [path_stem.with_suffix(".md"), path_stem.with_suffix(".tex"), path_stem.with_suffix(".csv")]
    paths[0].write_text(md)
    paths[1].write_text(tex)
    agg.reset_index().to_csv(paths[2], index=False)
    return paths
