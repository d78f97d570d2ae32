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

The plans are in paper_plans.py and a table's rendering in paper_render.py; this module runs the
plans' sweeps, indexes what they wrote, and re-exports both modules' names.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from unlearn import io

from . import reference
from .paper_plans import CPU_PLAN, GPU_PLAN, PLANS, command, entries
from .paper_render import ROOT, describe, header, machine, plural, render_where, runs_line, seeds_of, write_table

__all__ = [
    "CPU_PLAN",
    "GPU_PLAN",
    "PLANS",
    "ROOT",
    "Interrupted",
    "command",
    "describe",
    "entries",
    "header",
    "index",
    "machine",
    "main",
    "plural",
    "render_where",
    "run_one",
    "runs_line",
    "seeds_of",
    "sweep",
    "write_table",
]


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


def _parser() -> argparse.ArgumentParser:
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
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
