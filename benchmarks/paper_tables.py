"""Reference results: the paper tables in docs/results/, each rendered from its committed records
(`<table>.jsonl`, one successful run a line), which any machine can extend.

    python -m benchmarks.paper_tables [--plan cpu|gpu] [--only NAME ...] [--render-only] [--list]
                                      [--set KEY=VALUE ...] [--out docs/results] [--results results/paper]

For each table of the plan (the CPU plan unless `--plan gpu`): seed the results directory with the
table's committed records (the runner skips every run recorded anywhere: run ids do not depend on
the machine), run `python -m benchmarks.table NAME <overrides>` (only missing runs train; an
interrupted call resumes), merge the records the table shows back into `<out>/NAME.jsonl` (a newer
record of a run id replaces the older one; nothing else is dropped), and render `<out>/NAME.md`,
`.csv` and `.tex` from that file alone, with the commits, machines, seeds and wall time of its
records. `--render-only` re-renders every planned table that has records, running nothing.
`--set` adds an override to every sweep (a launcher: `--set hydra/launcher=submitit_slurm`).
`<out>/README.md` indexes the tables, their records and what the plan leaves for a GPU. No
published values are transcribed: these tables are the reference a reproduction is checked
against. Utility and ratios are the comparable columns; seconds are the named machines'.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from unlearn import io

from . import reference
from .records import cpu_name, git

ROOT = Path(__file__).resolve().parents[1]

# (table, overrides, why this size) that a 2-core CPU finishes in a few hours, cheapest first.
# A narrowed dataset keeps the paper's protocol on a smaller split; the title says so.
CPU_PLAN: list[tuple[str, list[str], str]] = [
    ("unlearn_als_paper", ["dataset=ml100k_als_paper", "seed=0,1,2"], "ML-100K, the paper's protocol, 3 seeds"),
    ("ultrare_main_mse", ["dataset=ml100k", "seed=0,1,2"], "ML-100K ratings, 3 seeds"),
    ("ultrare_main", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K (bpr), 3 seeds"),
    ("ultrare_selection", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K, 3 seeds"),
    (
        "eemu_main_cpu",
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, the small two-tower (tuned/ml100k_twotower) under the tuned eemu_cpu preset, 3 seeds, and its "
        "ablations (no meta-learning, no adaptation, sequential updates), 3 seeds each: 27 runs, 100 min of one "
        "core on a loaded 2-core machine (an ablation seed about 21 min, most of it the sequential updates)",
    ),
    (
        "latency_stream",
        [
            "method=sisa,receraser,ultrare,unlearn_als",
            "completeness.exact_replica=false",
            "runtime.threads=1",
            "runtime.progress=false",
        ],
        "ML-1M (ml1m_cure4rec), the tuned presets, 20 single-user requests, seeds 0-2, without retrain's own "
        "stream (each speedup reads retrain's time for it as 20 fits of the oracle, `retrain_s`) and without the exact "
        "replica: 12 runs, about 30 min of one core a seed on a 2-core Xeon",
    ),
    (
        "realistic_requests",
        ["dataset=ml100k", "seed=0,1,2", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, the tuned presets, sensitive interactions and a spam campaign as streams, every method, 3 seeds "
        "(66 runs, 68 min of one core; the eemu_cpu rows, about 35 min a seed, are not in the records yet); the "
        "records also hold CURE4Rec ML-1M, seed 0, without retrain's own streams, ifru and EEMU (18 runs, 63 min)",
    ),
    (
        "exact_vs_approx",
        ["dataset=ml100k", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, each method's default sub-model (bpr; als for Unlearn-ALS), 20 single-user requests and one of 5% "
        "of the users, every exact and approximate method, 3 seeds (66 runs, 56 min of one core); the records also "
        "hold ML-100K wmf at seed 0 (20 runs, 15 min), ifru on lightgcn at seed 0 (3 runs, 14 min) and CURE4Rec "
        "ML-1M at seed 0 without retrain's and ifru's own streams (20 runs, 74 min)",
    ),
    (
        "receraser_utility",
        [
            "dataset=ml1m_receraser,yelp2018",
            "submodel=bpr_receraser",
            "seed=0",
            "completeness.seed_floor=false",
            "completeness.exact_replica=false",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "runtime.threads=1",
            "runtime.progress=false",
        ],
        "ML-1M and Yelp2018 with the released BPR preset only, seed 0, without the exact replica: 6 runs, 3.2 hours of "
        "one core on a loaded 2-core Xeon (Yelp2018: retrain 70 min, RecEraser 71 min, SISA 28 min); wmf and lightgcn "
        "and seeds 1-2 are left for a GPU",
    ),
]

# what the plan leaves for a GPU (full paper datasets; hours per sub-model on 2 CPU cores)
GPU_PLAN: list[tuple[str, list[str], str]] = [
    ("receraser_utility", ["runtime=gpu"], "ML-1M and Yelp2018, three sub-models, 3 seeds"),
    ("receraser_time", ["runtime=gpu"], "ML-1M, three sub-models"),
    ("receraser_partition", ["runtime=gpu"], "ML-1M, 4 partitions x 3 K"),
    ("ultrare_main", ["runtime=gpu"], "CURE4Rec ML-1M and ADM beside ML-100K"),
    ("ultrare_main_mse", ["runtime=gpu"], "ML-latest-small and ML-1M beside ML-100K"),
    ("ultrare_selection", ["runtime=gpu"], "CURE4Rec ML-1M and ADM"),
    ("unlearn_als_paper", ["runtime=gpu"], "ML-1M beside ML-100K"),
    ("eemu_main", ["runtime=gpu"], "two-tower meta-training on ML-100K and ML-1M"),
    ("latency_stream", ["runtime=gpu"], "20 single-user requests on ML-1M, every method"),
    ("realistic_requests", ["dataset=ml1m_cure4rec", "runtime=gpu"], "CURE4Rec ML-1M, every method, 3 seeds"),
    ("exact_vs_approx", ["dataset=ml1m_cure4rec", "runtime=gpu"], "CURE4Rec ML-1M, every method, 3 seeds"),
]


PLANS = {"cpu": CPU_PLAN, "gpu": GPU_PLAN}


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


def entries(name: str) -> list[tuple[str, list[str], str]]:
    """Every plan entry of table `name` as (plan, overrides, why), the CPU plan's first."""
    return [(plan, o, w) for plan, table in PLANS.items() for n, o, w in table if n == name]


def command(name: str, plan: str = "cpu") -> str:
    return f"python -m benchmarks.paper_tables {'--plan gpu ' if plan == 'gpu' else ''}--only {name}"


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


def sweep(cmd: list[str]) -> tuple[int, bool]:
    """(exit status, interrupted) of the table's sweep. On Ctrl-C the sweep gets the same signal:
    wait for it to stop, so that the runs it finished are exported."""
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        return proc.wait(), False
    except KeyboardInterrupt:
        return proc.wait(), True


class Interrupted(Exception):
    """Ctrl-C during a table's sweep, after what it finished was exported and rendered: stop there."""


def run_one(
    name: str,
    overrides: list[str],
    why: str,
    results: Path,
    out: Path,
    render_only: bool = False,
    plan: str = "cpu",
    extra: list[str] | tuple = (),
) -> bool:
    """Seed, sweep, export and render one table (`render_only`: render only). Whatever the sweep
    finished is exported and rendered even when it fails or is interrupted."""
    from .report import load_spec, narrowing

    jsonl = out / f"{name}.jsonl"
    records = reference.read(jsonl)
    if records.bad:
        print(records.warning(jsonl), file=sys.stderr)
    start, ok, interrupted = time.perf_counter(), True, False
    if not render_only:
        seeded = reference.seed(results, records)
        print(
            f"{name}: {len(records.by_id)} record(s) in {jsonl}, {seeded} seeded into {results / 'runs'}",
            file=sys.stderr,
        )
        rc, interrupted = sweep(
            [sys.executable, "-m", "benchmarks.table", name, f"results_dir={results}", *overrides, *extra]
        )
        if rc != 0 or interrupted:
            ok = False
            print(
                f"error: {name}: the sweep {'was interrupted' if interrupted else f'exited with {rc}'}; "
                "the runs it finished are kept",
                file=sys.stderr,
            )
        print(reference.export(results, jsonl, name, narrowing(load_spec(name), overrides)), file=sys.stderr)
        records = reference.read(jsonl)
    if not records.by_id:
        print(
            f"error: {name}: no records in {jsonl}{'; run it without --render-only' if render_only else ''}; "
            "nothing written for it",
            file=sys.stderr,
        )
        ok = False
    else:
        try:
            write_table(name, overrides, why, records, out, time.perf_counter() - start, plan)
        except SystemExit as exc:
            print(f"{exc} ({name}: nothing written for it)", file=sys.stderr)
            ok = False
    if interrupted:
        raise Interrupted(name)
    return ok


def index(out: Path) -> None:
    """`<out>/README.md`: the tables written, their records and scope, and the GPU plan."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(n for table in PLANS.values() for n, _, _ in table))
    lines = [
        "# Reference results",
        "",
        "Paper tables as regenerated by this suite (`make paper-tables`). Each table is rendered from its "
        "records alone: `<table>.jsonl`, one successful run a line, accumulated over commits and machines "
        "(a newer record of a run replaces the older one). `make paper-tables` seeds the results directory "
        "with them, so that a run recorded on any machine is not rerun, runs what is missing, merges the new "
        "records back and re-renders; `python -m benchmarks.paper_tables --render-only` re-renders without "
        "running anything. Each table's header names the commits, machines, seeds and wall time of its "
        "records. Utility and ratios are the comparable columns; seconds are the named machines'. No "
        "published values are transcribed.",
        "",
        "## Tables",
        "",
    ]
    written = [n for n in names if (out / f"{n}.md").is_file()]
    for n in written:
        files = ", ".join(f"[{ext}]({n}.{ext})" for ext in ("csv", "tex") if (out / f"{n}.{ext}").is_file())
        jsonl = out / f"{n}.jsonl"
        kept = (
            f"{plural(len(reference.read(jsonl).by_id), 'run record')} in [{n}.jsonl]({n}.jsonl)"
            if jsonl.is_file()
            else "its records are not committed (rendered before records were kept)"
        )
        scope = "; ".join(f"{p} plan: {w}" for p, _, w in entries(n))
        lines.append(f"- [{n}]({n}.md){f' ({files})' if files else ''}: {kept}. {scope}")
    if not written:
        lines.append("- (none yet)")
    missing = [(n, w) for n, _, w in CPU_PLAN if not (out / f"{n}.md").is_file()]
    if missing:
        lines += ["", "Planned for the CPU but not written yet:", ""] + [f"- {n}: {w}" for n, w in missing]
    lines += [
        "",
        "## Left for a GPU",
        "",
        "Run on a machine with a GPU (or a SLURM cluster: add `--set hydra/launcher=submitit_slurm`, see "
        "README); the records merge into the same files:",
        "",
    ]
    for n, o, w in GPU_PLAN:
        jsonl = out / f"{n}.jsonl"
        on_gpu = sum(bool(r.get("gpu")) for r in reference.read(jsonl).values()) if jsonl.is_file() else 0
        lines.append(
            f"- {n} ({w}): `{command(n, 'gpu')}` (runs `python -m benchmarks.table {n} {' '.join(o)}`)"
            + (f"; {plural(on_gpu, 'run record')} from a GPU so far" if on_gpu else "")
        )
    io.write_text(out / "README.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--results", default=str(ROOT / "results" / "paper"))
    ap.add_argument("--plan", choices=tuple(PLANS), help="the plan to run (default: cpu; with --render-only: both)")
    ap.add_argument("--only", nargs="*", help="tables of the plan to run (default: all)")
    ap.add_argument("--render-only", action="store_true", help="render the committed records; run nothing")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override added to every sweep, e.g. a launcher (the tables' filters stay the plan's); repeatable",
    )
    ap.add_argument("--list", action="store_true", help="print the plan and exit")
    args = ap.parse_args(argv)
    if args.list:
        for plan, table in PLANS.items():
            for n, o, w in table:
                print(f"{plan}  {n} {' '.join(o)}  # {w}")
        return 0
    out, results = Path(args.out), Path(args.results)
    plans = [args.plan] if args.plan else list(PLANS) if args.render_only else ["cpu"]
    todo: dict[str, tuple[str, list[str], str]] = {}
    for plan in plans:
        for n, o, w in PLANS[plan]:
            todo.setdefault(n, (plan, o, w))
    unknown = [n for n in args.only or [] if n not in todo]
    if unknown:
        print(
            f"error: --only {' '.join(unknown)}: not in the {' or '.join(plans)} plan. Planned: {', '.join(todo)}.",
            file=sys.stderr,
        )
        return 2
    ok = True
    try:
        for name, (plan, overrides, why) in todo.items():
            if args.only and name not in args.only:
                continue
            if args.render_only and not (out / f"{name}.jsonl").is_file():
                if args.only:
                    print(
                        f"error: {name}: no records ({out / (name + '.jsonl')}); run it without --render-only",
                        file=sys.stderr,
                    )
                    ok = False
                else:
                    print(f"{name}: no records ({out / (name + '.jsonl')}); left as it is", file=sys.stderr)
                continue
            ok &= run_one(name, overrides, why, results, out, args.render_only, plan, args.set)
    except Interrupted as exc:
        index(out)
        print(
            f"interrupted at {exc}: its finished runs are in {out / (str(exc) + '.jsonl')}; the same command "
            "goes on from there",
            file=sys.stderr,
        )
        return 130
    index(out)
    if not args.render_only:
        print(f"left for a GPU: {', '.join(n for n, _, _ in GPU_PLAN)} (see {out / 'README.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
