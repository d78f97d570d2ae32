"""Reference results: regenerate the paper tables a 2-core CPU can finish in a few hours into
docs/results/, and list what is left for a GPU.

    python -m benchmarks.paper_tables [--out docs/results] [--results results/paper] [--only NAME ...] [--list]

For each planned table this runs `python -m benchmarks.table NAME <overrides>` (finished runs are
skipped, so an interrupted call resumes), then writes `<out>/NAME.md` and `<out>/NAME.csv`: the
rendered table with the commit, the machine, the seeds, the overrides and the wall time of the run
that made it. `<out>/README.md` indexes what is there and what the plan left for a GPU (with the
command to run it). No published values are transcribed: these tables are the reference a
reproduction is checked against. Utility and ratios are the comparable columns; seconds are this
machine's.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .records import cpu_name, git

ROOT = Path(__file__).resolve().parents[1]

# (table, overrides, why this size) that a 2-core CPU finishes in a few hours, cheapest first.
# A narrowed dataset keeps the paper's protocol on a smaller split; the title says so.
CPU_PLAN: list[tuple[str, list[str], str]] = [
    ("unlearn_als_paper", ["dataset=ml100k_als_paper", "seed=0,1,2"], "ML-100K, the paper's protocol, 3 seeds"),
    ("ultrare_main_mse", ["dataset=ml100k", "seed=0,1,2"], "ML-100K ratings, 3 seeds"),
    ("ultrare_main", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K (bpr), 3 seeds"),
    ("ultrare_selection", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K, 3 seeds"),
    ("eemu_main_cpu", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1", "runtime.progress=false"],
     "ML-100K, the small two-tower tuned for a plain fit (tuned/ml100k_twotower), 3 seeds: 18 runs, 32 min of one "
     "core on a 2-core Xeon"),
    ("latency_stream", ["method=sisa,receraser,ultrare,unlearn_als", "completeness.exact_replica=false",
                        "runtime.threads=1", "runtime.progress=false"],
     "ML-1M (ml1m_cure4rec), the tuned presets, 20 single-user requests, seeds 0-2, without retrain's own "
     "stream (each speedup reads retrain's time for it as 20 fits of the oracle, `retrain_s`) and without the exact "
     "replica: 12 runs, about 30 min of one core a seed on a 2-core Xeon"),
    ("receraser_utility", ["dataset=ml1m_receraser,yelp2018", "submodel=bpr_receraser", "seed=0",
                           "completeness.seed_floor=false", "completeness.exact_replica=false",
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1", "runtime.progress=false"],
     "ML-1M and Yelp2018 with the released BPR preset only, seed 0, without the exact replica: 6 runs, 3.2 hours of "
     "one core on a loaded 2-core Xeon (Yelp2018: retrain 70 min, RecEraser 71 min, SISA 28 min); wmf and lightgcn "
     "and seeds 1-2 are left for a GPU"),
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
]


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def seeds_of(overrides: list[str]) -> str:
    for o in overrides:
        if o.startswith("seed="):
            return o.split("=", 1)[1]
    return "the experiment's (0,1,2)"


def runs_line(name: str, overrides: list[str], results: Path) -> str:
    """What the table's records themselves cost: their count, the sum of their own `wall_s` and
    the commits they ran at (a table rendered from runs recorded earlier took seconds to write)."""
    from .report import load_spec, narrowed, narrowing
    from .tables_fmt import apply_filter, load_records

    spec = load_spec(name)
    df, _ = load_records(results)
    if not df.empty:
        df = apply_filter(df, narrowed(spec, narrowing(spec, overrides)).get("filter"))
    if df.empty:
        return "- runs: none recorded"
    commits = sorted({str(c)[:12] for c in df.get("git_commit", []) if isinstance(c, str) and c})
    return (f"- runs: {len(df)} records, {df['wall_s'].sum():.0f} s of their own wall time in all, run at "
            f"commit {', '.join(commits) or 'unknown'} (each record keeps its machine and load)")


def header(name: str, overrides: list[str], wall_s: float, why: str, out: Path, runs: str = "") -> str:
    # changes to the tables' own folder (the index this command rewrites) do not make the code dirty
    exclude = f":(exclude){out.resolve().relative_to(ROOT)}" if out.resolve().is_relative_to(ROOT) else ""
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                                   *([exclude] if exclude else [])) else ""
    return "\n".join([
        f"<!-- written by `make paper-tables` (benchmarks/paper_tables.py); do not edit by hand -->",
        f"- command: `python -m benchmarks.table {name} {' '.join(overrides)}`",
        f"- scope: {why}",
        f"- commit: {git('rev-parse', '--short=12', 'HEAD')}{dirty}",
        f"- machine: {machine()} (seconds in the table are this machine's)",
        f"- seeds: {seeds_of(overrides)}",
        f"- wall time: {wall_s:.0f} s (runs already recorded under the results directory are not rerun)",
        *([runs] if runs else []),
        f"- written: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "", ""])


def run_one(name: str, overrides: list[str], why: str, results: Path, out: Path) -> bool:
    cmd = [sys.executable, "-m", "benchmarks.table", name, f"results_dir={results}", *overrides]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    wall = time.perf_counter() - start
    md, csv = results / "tables" / f"{name}.md", results / "tables" / f"{name}.csv"
    if rc != 0 or not md.is_file():
        print(f"error: {name} failed (exit {rc}); nothing written for it", file=sys.stderr)
        return False
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(header(name, overrides, wall, why, out, runs_line(name, overrides, results))
                                    + md.read_text())
    meta = f"# {name}: commit {git('rev-parse', '--short=12', 'HEAD')}; machine {machine()}; seeds {seeds_of(overrides)}; wall {wall:.0f} s\n"
    (out / f"{name}.csv").write_text(meta + csv.read_text())
    return True


def index(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    done = [(n, o, w) for n, o, w in CPU_PLAN if (out / f"{n}.md").is_file()]
    lines = ["# Reference results", "",
             "Paper tables as regenerated by this suite (`make paper-tables`); each file names the commit, "
             "machine, seeds and wall time of its run. Utility and ratios are the comparable columns; seconds "
             "are the named machine's. No published values are transcribed.", "",
             "## Regenerated here (CPU)", ""]
    lines += [f"- [{n}]({n}.md) ([csv]({n}.csv)): {w}" for n, o, w in done] or ["- (none yet)"]
    missing = [(n, w) for n, o, w in CPU_PLAN if not (out / f"{n}.md").is_file()]
    if missing:
        lines += ["", "Planned for the CPU but not written yet:", ""] + [f"- {n}: {w}" for n, w in missing]
    lines += ["", "## Left for a GPU", "", "Run on a machine with a GPU (or a SLURM cluster, see README):", ""]
    lines += [f"- {n} ({w}): `python -m benchmarks.table {n} {' '.join(o)}`" for n, o, w in GPU_PLAN]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--results", default=str(ROOT / "results" / "paper"))
    ap.add_argument("--only", nargs="*", help="tables of the CPU plan to run (default: all)")
    ap.add_argument("--list", action="store_true", help="print the plan and exit")
    args = ap.parse_args(argv)
    if args.list:
        for n, o, w in CPU_PLAN:
            print(f"cpu  {n} {' '.join(o)}  # {w}")
        for n, o, w in GPU_PLAN:
            print(f"gpu  {n} {' '.join(o)}  # {w}")
        return 0
    out, results = Path(args.out), Path(args.results)
    ok = True
    for name, overrides, why in CPU_PLAN:
        if args.only and name not in args.only:
            continue
        ok &= run_one(name, overrides, why, results, out)
    index(out)
    print(f"left for a GPU: {', '.join(n for n, _, _ in GPU_PLAN)} (see {out / 'README.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
