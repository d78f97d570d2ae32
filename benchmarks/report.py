"""Tables and figures from result files alone.

    python -m benchmarks.report results_dir=DIR [table=NAME [dataset=... submodel=...]] [ks=[10,20,50]]
                                [interval=std|ci95]

Writes <results_dir>/tables/{utility,efficiency,completeness}.{md,tex,csv}, one table per spec in
benchmarks/tables/ whose runs exist, and figures under <results_dir>/figures/ (PNG and PDF). Cells
are mean ± std over seeds; `interval=ci95` (or `interval: ci95` in a table spec) shows the 95%
t-interval over seeds instead. Records are read (`records_load`), aggregated over seeds
(`aggregate`) and rendered (`render`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf

from . import figures
from .aggregate import GROUP_KEYS, aggregate, varying, with_variants
from .cells import INTERVALS, PUBLISHED
from .layout import row_header
from .records_load import LeftOut, apply_filter, load_records
from .render import write_table

SPEC_DIR = Path(__file__).parent / "tables"
CONF = Path(__file__).resolve().parent / "conf"  # the Hydra configs (pkg://benchmarks.conf; conf/ in a checkout)


def default_tables(ks: list[int], main_k: int) -> dict[str, list[str]]:
    stages = ("before", "after", "retrain")
    return {
        "utility": [f"{s}.{m}@{main_k}" for m in ("recall", "ndcg") for s in stages]
        + [f"ndcg@{main_k}.loss_vs_oracle", f"after.ndcg@{main_k}.active", f"after.ndcg@{main_k}.inactive"]
        + [f"after.{m}@{k}" for k in ks if k != main_k for m in ("recall", "ndcg")],
        "efficiency": [
            "fit_s",
            "unlearn_s",
            "unlearn_s.p50",
            "unlearn_s.p95",
            "retrain_s",
            "speedup",
            "speedup.cpu",
            "unlearn_cpu_s",
            "n_shards_retrained",
            "unlearn.shards_s",
            "unlearn.aggregator_s",
            "fit.partition_s",
            "fit.pretrain_s",
            "peak_rss_mb",
        ],
        "completeness": [
            "untouched_shards",
            "exact_gap",
            "partition_drift",
            "partition_drift.ari",
            "retrain_gap",
            "seed_floor.retrain_gap",
            f"retrain_rank_gap@{main_k}",
            f"seed_floor@{main_k}",
            f"rank_gap_over_floor@{main_k}",
            f"retrain_rank_gap@{main_k}.deleted",
            f"seed_floor@{main_k}.deleted",
            f"rank_gap_over_floor@{main_k}.deleted",
            "mia_auc.before",
            "mia_auc.after",
            "mia_auc.retrain",
            "mia_lr_auc.after",
            "mia_pairs",
            f"forget_hit@{main_k}.before",
            f"forget_hit@{main_k}.after",
            f"forget_hit@{main_k}.retrain",
            f"forget_hit@{main_k}.popularity",
            "forgotten_collapse.after",
            "forgotten_collapse.after.untransferred",
            "forgotten_collapse.retrain",
        ],
    }


EXACT_GAP_NOTE = (
    "Exact gap is empty (-) where unlearning retrained every shard (untouched shards = 0): the exact "
    "replica would then be the same computation as the unlearned model, so the gap could not fail."
)
COMPLETENESS_NOTE = (
    "Score gap: relative distance to the retrain oracle's per-user standardised scores; rank gap@K: "
    "1 - mean top-K Jaccard with the oracle over retained users (deleted: users who lost rows); seed "
    "floor: the same between the oracle and one with another seed; gap/floor = rank gap / seed floor "
    "(about 1: as close to the oracle as a reseeded retrain). Partition drift: share of retained "
    "units whose shard differs from a partition rebuilt without F (moved), and the adjusted Rand "
    "index of the two (ARI). Forget hit, popularity stage: a popularity ranker that remembers "
    "nothing. Collapse: deleted users' mean pairwise cosine of their final user vectors "
    "(untransferred: RecEraser's plain mean of shard vectors)."
)


def load_spec(name: str) -> dict:
    path = SPEC_DIR / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.yaml")))
        raise SystemExit(f"error: unknown table '{name}'. Valid tables: {names or '(none)'}.")
    return yaml.safe_load(path.read_text())


BASES = {
    "self": "retrain itself (1 by definition)",
    "same_process": "the oracle trained in the same run",
    "calibrated": "a cached oracle's seconds carried over by the two processes' calibration",
    "uncalibrated": "a cached oracle's seconds as measured elsewhere (read with care)",
}


def speedup_note(df: pd.DataFrame, columns: list[str]) -> str:
    """What the speedups of a table rest on: how many runs had each basis."""
    if not any(c.startswith("speedup") for c in columns):
        return ""
    if "speedup.basis" not in df:
        return "Speedup: recorded before runs stated their basis (the oracle's seconds may come from another process)."
    counts = df["speedup.basis"].fillna("not stated").value_counts()
    parts = [f"{n} run{'s' if n > 1 else ''} {BASES.get(b, b)}" for b, n in counts.items()]
    return "Speedup = retraining seconds x requests / unlearning seconds, on one scale: " + "; ".join(parts) + "."


def interval_of(spec: dict, override: str | None = None) -> str:
    """The spread a table shows: the caller's choice, else the spec's `interval`, else std."""
    interval = override or spec.get("interval") or "std"
    if interval not in INTERVALS:
        raise SystemExit(f"error: unknown interval '{interval}'. Valid: {', '.join(INTERVALS)}.")
    return interval


def render_spec(
    name: str, spec: dict, df: pd.DataFrame, out: Path, left_out: LeftOut | None = None, interval: str | None = None
) -> list[Path]:
    sub = apply_filter(df, spec.get("filter"))
    if sub.empty:
        return []
    rows, columns = with_variants(sub, list(spec["rows"])), spec["columns"]
    agg = aggregate(sub, rows, columns)
    published = spec.get("published")
    notes = []
    if published and published.get("rows"):
        pub = pd.DataFrame(published["rows"])
        pub_rows = [r for r in rows if r in pub]
        pub = pub.assign(**{r: pub[r].astype(str) + " (published)" for r in pub_rows[-1:]})
        pub = pub.assign(**{r: "-" for r in rows if r not in pub}).set_index(rows)  # same index levels as ours
        pub["n"], pub[PUBLISHED] = 0, True
        agg = pd.concat([agg.assign(**{PUBLISHED: False}), pub[[c for c in [*agg.columns, PUBLISHED] if c in pub]]])
        notes.append(f"Published values from {published.get('source', 'the paper')}.")
    notes += [n for n in [speedup_note(sub, columns), *(spec.get("notes") or [])] if n]
    paths = write_table(
        agg, columns, out / "tables" / name, spec.get("title", name), notes, interval_of(spec, interval), left_out
    )
    if spec.get("protocol"):  # the one-line protocol caption, printed under the table (docs/protocols.md)
        with open(paths[0], "a") as fh:
            fh.write(f"\nprotocol: {spec['protocol']}\n")
    figs = spec.get("figure") or []
    for i, fig in enumerate(figs if isinstance(figs, list) else [figs]):  # one figure or a list
        hue = fig.get("hue", rows[:1])
        hue = (hue if isinstance(hue, list) else [hue]) + [r for r in rows if r.startswith("cfg.")]  # variants apart
        stem = out / "figures" / fig.get("file", name if i == 0 else f"{name}_{i + 1}")
        paths += figures.metric_vs(sub, fig["x"], fig["y"], hue, stem, fig.get("title", spec.get("title", "")))
    if spec.get("tradeoff"):  # one trade-off figure per setting of its facets (e.g. dataset x regime)
        paths += tradeoff_figures(sub, spec["tradeoff"], rows, out / "figures" / f"{name}_tradeoff")
    return paths


def tradeoff_figures(df, fig: dict, rows: list[str], stem: Path) -> list[Path]:
    """`figures.tradeoff` for each `y` (one key or a list) and each value of the spec's `facets`
    (default: the table's rows that are neither the method nor the family), each file named after
    its facet's values (and its y, where there are several)."""
    style = fig.get("style", "method.family")
    facets = [k for k in fig.get("facets", [r for r in rows if r not in ("method", style)]) if k in df]
    ys = fig["y"] if isinstance(fig["y"], list) else [fig["y"]]
    paths = []
    parts = df.groupby([df[k].astype(str) for k in facets], sort=True) if facets else [((), df)]
    for values, part in parts:
        values = values if isinstance(values, tuple) else (values,)
        where = ", ".join(f"{figures.axis_label(k)} {v}" for k, v in zip(facets, values))
        title = fig.get("title", "What unlearning saves against what it leaves behind") + (
            f" ({where})" if where else ""
        )
        for y in ys:
            bits = [str(v) for v in values] + ([y] if len(ys) > 1 else [])
            suffix = "_".join(re.sub(r"[^A-Za-z0-9]+", "-", b) for b in bits)
            path = stem.with_name(f"{stem.name}_{suffix}" if suffix else stem.name)
            paths += figures.tradeoff(part, ["method"], fig["x"], y, path, style, title)
    return paths


def narrowing(spec: dict, overrides: list[str]) -> dict:
    """{filter key: registered names} for the overrides that choose options of a config group the
    spec filters on: `submodel=bpr_receraser,wmf` -> {"submodel": ["bpr", "wmf"]}."""
    where = {}
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key not in (spec.get("filter") or {}) or not (CONF / key).is_dir():
            continue
        names = []
        for option in value.split(","):
            path = CONF / key / f"{option}.yaml"
            names.append((yaml.safe_load(path.read_text()) or {}).get("name", option) if path.is_file() else option)
        where[key] = names
    return where


def narrowed(spec: dict, where: dict | None) -> dict:
    """The spec with filter keys replaced by `where` (e.g. the dataset a table's sweep was pointed
    at with `dataset=ml100k`); the title names the replacement."""
    if not where:
        return spec
    spec = {**spec, "filter": {**(spec.get("filter") or {}), **where}}
    shown = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in where.items())
    spec["title"] = f"{spec.get('title', '')} [{shown}]"
    return spec


def report(
    results_dir: str, table: str | None = None, ks=None, where: dict | None = None, interval: str | None = None
) -> list[Path]:
    out = Path(results_dir)
    df, left_out = load_records(out)
    if df.empty:
        raise SystemExit(f"error: no successful result records under {out / 'runs'}. {left_out.note()}".rstrip())
    if left_out:
        print(f"note: {left_out.note()}", file=sys.stderr)
    interval_of({}, interval)  # an unknown interval fails before anything is written
    written: list[Path] = []
    if table:
        written += render_spec(table, narrowed(load_spec(table), where), df, out, left_out, interval)
        if not written:
            raise SystemExit(f"error: no records match table '{table}'; run its experiment first.")
        return written
    ks = list(
        ks or sorted({int(c.split("@")[1]) for c in df.columns if c.startswith("after.recall@") and c.count(".") == 1})
    )
    ks = ks or [20]  # records without ranking metrics: the other tables still render
    main_k = 20 if 20 in ks else ks[len(ks) // 2]
    rows, fixed = varying(df, GROUP_KEYS)
    fixed_note = "Fixed: " + ", ".join(f"{row_header(k)}={v}" for k, v in fixed.items()) + "." if fixed else ""
    for name, columns in default_tables(ks, main_k).items():
        agg = aggregate(df, rows, columns)
        if not agg.empty:
            notes = [fixed_note, speedup_note(df, columns)] + (
                [EXACT_GAP_NOTE, COMPLETENESS_NOTE] if name == "completeness" else []
            )
            notes = [n for n in notes if n]
            written += write_table(
                agg, columns, out / "tables" / name, name.capitalize(), notes, interval_of({}, interval), left_out
            )
    label = [k for k in rows if k not in ("deletion.ratio",)] or rows
    written += figures.utility_vs_time(df, label, f"after.ndcg@{main_k}", out / "figures" / "utility_vs_time")
    written += figures.metric_vs_k(df, label, "ndcg", ks, out / "figures" / "ndcg_vs_k")
    written += figures.metric_vs(df, "deletion.ratio", f"after.ndcg@{main_k}", label, out / "figures" / "ndcg_vs_ratio")
    written += figures.convergence(df, out / "figures" / "als_convergence")
    for spec_path in sorted(SPEC_DIR.glob("*.yaml")):
        written += render_spec(spec_path.stem, yaml.safe_load(spec_path.read_text()), df, out, left_out, interval)
    return written


HELP = """usage: python -m benchmarks.report [results_dir=DIR] [table=NAME [AXIS=OPTION ...]] [ks=[10,20,50]]
                                  [interval=std|ci95]

Tables and figures from the result records under DIR (default: results).

  results_dir=DIR     where the runs' records are (DIR/runs/*/result.json); tables and figures go to
                      DIR/tables and DIR/figures
  table=NAME          only the paper table NAME (benchmarks/tables/NAME.yaml); AXIS=OPTION narrows
                      it to a config option it filters on (e.g. dataset=ml100k)
  ks=[K,...]          the cut-offs of the default utility table (default: those the records hold)
  interval=std|ci95   the spread after +/-: std over seeds (default) or the 95% t-interval"""


def main(argv: list[str] | None = None) -> None:
    argv = list(argv if argv is not None else sys.argv[1:])
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise SystemExit(f"error: expected KEY=VALUE options, got {' '.join(bad)} (see --help).")
    args = OmegaConf.from_dotlist(argv)
    table = args.get("table")
    spec = load_spec(table) if table else {}
    axes = set(spec.get("filter") or {}) & {p.name for p in CONF.iterdir() if p.is_dir()}
    unknown = set(args) - {"results_dir", "table", "ks", "interval"} - axes
    if unknown:
        valid = ", ".join(["results_dir", "table", "ks", "interval", *sorted(axes)])
        raise SystemExit(f"error: unknown option(s) {', '.join(sorted(unknown))}. Valid: {valid}.")
    where = narrowing(spec, [a for a in argv if a.partition("=")[0] in axes]) if table else None
    paths = report(str(args.get("results_dir", "results")), table, args.get("ks"), where, args.get("interval"))
    for p in paths:
        print(p)


if __name__ == "__main__":
    main()
