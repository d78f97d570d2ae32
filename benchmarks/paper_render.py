"""How `make paper-tables` (benchmarks/paper_tables.py) renders a table: `<out>/NAME.{md,csv,tex}`
from the table's records alone, under a header that says how to extend and re-render it and what
its records are (commits, machines, seeds, their own wall time)."""

from __future__ import annotations

import os
import platform
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from unlearn import io

from . import reference
from .paper_plans import command, entries
from .records import cpu_name, git

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def seeds_of(overrides: list[str]) -> str:
    for o in overrides:
        if o.startswith("seed="):
            return o.split("=", 1)[1]
    return "the experiment's (0,1,2)"


def runs_line(name: str, overrides: list[str], results: Path) -> str:
    """What the table's records under a results directory cost: their count, the sum of their own
    `wall_s` and the commits they ran at."""
    from .report import load_spec, narrowed, narrowing

    spec = load_spec(name)
    df, _ = reference.load_records(results)
    if not df.empty:
        df = reference.apply_filter(df, narrowed(spec, narrowing(spec, overrides)).get("filter"))
    if df.empty:
        return "- runs: none recorded"
    commits = sorted({str(c)[:12] for c in df.get("git_commit", []) if isinstance(c, str) and c})
    return (
        f"- runs: {len(df)} records, {df['wall_s'].sum():.0f} s of their own wall time in all, run at "
        f"commit {', '.join(commits) or 'unknown'} (each record keeps its machine and load)"
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_where(name: str, records: list[dict]) -> dict:
    """The narrowing a table's file is rendered with, so that it shows every record any plan entry
    of the table exported: for each filter key an entry narrows, the options any entry chose (the
    spec's own for an entry that leaves the key alone) that the records hold; left alone where
    that comes to the spec's own. With one entry and all its options recorded, this is the
    narrowing `python -m benchmarks.table NAME <overrides>` renders with."""
    from .report import load_spec, narrowing

    spec = load_spec(name)
    flt = spec.get("filter") or {}
    chosen = [narrowing(spec, o) for _, o, _ in entries(name)]
    where = {}
    for key in dict.fromkeys(k for n in chosen for k in n):
        own = flt[key] if isinstance(flt[key], list) else [flt[key]]
        options = list(dict.fromkeys(v for n in chosen for v in n.get(key, own)))
        held = {r.get(key) for r in records}
        shown = [v for v in options if v in held] or options
        if set(shown) != set(own):
            where[key] = shown
    return where


def describe(records: list[dict]) -> dict[str, str]:
    """The commits, machines and seeds of `records` (commits and machines in the order they first
    ran, with their counts), and the sum of their own wall seconds."""
    ordered = sorted(records, key=lambda r: str(r.get("started_at") or ""))
    commits = Counter(str(r.get("git_commit") or "unknown")[:12] for r in ordered)
    machines = Counter((r.get("cpu") or "unknown CPU") + (f", {r['gpu']}" if r.get("gpu") else "") for r in ordered)
    dirty = sum(bool(r.get("git_dirty")) for r in records)
    seeds = sorted({r["seed"] for r in records if r.get("seed") is not None}, key=lambda s: (str(type(s)), s))
    return {
        "commits": ", ".join(f"{c} ({n})" for c, n in commits.items())
        + (f"; {dirty} run(s) with uncommitted changes" if dirty else ""),
        "machines": ", ".join(f"{m} ({n})" for m, n in machines.items()),
        "seeds": ",".join(map(str, seeds)) or "none recorded",
        "wall": f"{sum(float(r.get('wall_s') or 0) for r in records):.0f}",
    }


def header(
    name: str,
    overrides: list[str],
    wall_s: float,
    why: str,
    out: Path,
    runs: str = "",
    records: list[dict] | None = None,
    plan: str = "cpu",
) -> str:
    """The lines above a rendered table: how to extend and re-render it, and what its records are
    (without `records`: this machine's commit and the seeds of the overrides)."""
    # changes to the tables' own folder (the index this command rewrites) do not make the code dirty
    exclude = f":(exclude){out.resolve().relative_to(ROOT)}" if out.resolve().is_relative_to(ROOT) else ""
    dirty = (
        " (with uncommitted changes)"
        if git("status", "--porcelain", "--untracked-files=no", "--", ".", *([exclude] if exclude else []))
        else ""
    )
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = f" from {name}.jsonl" if records else ""
    lines = [
        f"<!-- written by `make paper-tables` (benchmarks/paper_tables.py){source}; do not edit by hand -->",
        f"- command: `python -m benchmarks.table {name} {' '.join(overrides)}`"
        + (f" (through `{command(name, plan)}`, which runs only what the records lack)" if records else ""),
        f"- scope: {why}",
    ]
    lines += [f"- also: `{command(name, p)}` ({w})" for p, _, w in entries(name) if p != plan]
    if records:
        d = describe(records)
        where = out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
        lines += [
            f"- records: this table rests on {plural(len(records), 'run record')}, [{where / (name + '.jsonl')}]"
            f"({name}.jsonl) (one a line; `python -m benchmarks.paper_tables --render-only --only {name}` "
            f"re-renders from them alone), {d['wall']} s of their own wall time in all",
            f"- commit: the records': {d['commits']}",
            f"- machine: the records': {d['machines']} (seconds in the table are these machines')",
            f"- seeds: {d['seeds']}",
            f"- wall time: {wall_s:.0f} s for this call (runs already in the records are not rerun)",
            f"- written: {written}, rendered at commit {head}{dirty}",
        ]
    else:
        lines += [
            f"- commit: {head}{dirty}",
            f"- machine: {machine()} (seconds in the table are this machine's)",
            f"- seeds: {seeds_of(overrides)}",
            f"- wall time: {wall_s:.0f} s (runs already recorded under the results directory are not rerun)",
            *([runs] if runs else []),
            f"- written: {written}",
        ]
    return "\n".join([*lines, "", ""])


def write_table(
    name: str, overrides: list[str], why: str, records: reference.Records, out: Path, wall_s: float, plan: str = "cpu"
) -> list[Path]:
    """Renders `<out>/NAME.{md,csv,tex}` from `records` alone (each file written whole, after all
    three rendered). Raises SystemExit with one line when no record matches the table."""
    recs = records.values()
    with tempfile.TemporaryDirectory(prefix="paper-tables-") as tmp:
        reference.render(records, name, render_where(name, recs), Path(tmp))
        texts = {ext: (Path(tmp) / "tables" / f"{name}.{ext}").read_text() for ext in ("md", "csv", "tex")}
    d = describe(recs)
    meta = (
        f"{name}: {plural(len(recs), 'record')} in {name}.jsonl; commits {d['commits']}; machines {d['machines']}; "
        f"seeds {d['seeds']}; {d['wall']} s of their own wall time"
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}.tex"]
    io.write_text(paths[0], header(name, overrides, wall_s, why, out, records=recs, plan=plan) + texts["md"])
    io.write_text(paths[1], f"# {meta}\n" + texts["csv"])
    io.write_text(paths[2], f"% {meta}\n" + texts["tex"])
    return paths
