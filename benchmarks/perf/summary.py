"""The performance targets against the latest record of each benchmark (results/perf/*.jsonl):
writes results/perf/summary.md, the table the README's performance section quotes.

    python -m benchmarks.perf.summary [--out results/perf]
    python -m benchmarks.perf.summary --record-bench SECONDS   # `make bench` appends its wall time

A target whose benchmark has not run yet shows as "not measured"; each figure says the machine
and threads of the run it came from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import ROOT
from .harness import append_record


def latest(out: Path, name: str) -> dict | None:
    path = out / f"{name}.jsonl"
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _row(rows, **match):
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def bpr(rec):
    learns = rec.get("fastest_reaches_implicit", True)  # records before the flag picked the fastest outright
    note = "" if learns else "; it never reached implicit's NDCG@20, so not evidence"
    return [
        (
            "a BPR epoch <= 1.5x implicit's",
            f"{rec['epoch_s_ours']:.3f} s vs {rec['epoch_s_implicit']:.3f} s "
            f"({rec['dataset']}, dim {rec['dim']}, {rec['fastest']}{note})",
            rec["ratio"],
            learns and rec["ratio"] <= 1.5,
        )
    ]


def als(rec):
    return [
        (
            f"an ALS sweep ({solver}) <= 1.0x implicit's",
            f"{p['sweep_s_ours']:.3f} s vs {p['sweep_s_implicit']:.3f} s",
            p["ratio"],
            p["ratio"] <= 1.0,
        )
        for solver, p in rec["pairs"].items()
    ]


def evaluation(rec):
    out = []
    for name, limit_s in (("ml1m_cure4rec", 0.25), ("gowalla", 5.0), ("yelp2018", 5.0)):
        r = _row(rec["rows"], dataset=name)
        if r is None:
            continue
        mem = r.get("peak_added_mb")
        met = r["recunlearn_s"] <= limit_s and (limit_s < 1 or mem is None or mem <= 4096)
        mem_txt = "" if mem is None else f", {mem:.0f} MB added at peak"
        target = f"full-ranking evaluation, {name} <= {limit_s:g} s" + ("" if limit_s < 1 else " within 4 GiB")
        out.append((target, f"{r['recunlearn_s']:.3f} s{mem_txt}", r["recunlearn_s"] / limit_s, met))
    return out


def aggregator(rec):
    out = []
    for r in rec["rows"]:
        if r["schedule"].startswith("entity"):
            ratio = r["aggregator_s"] / r["shard_fit_s"]
            out.append(
                (
                    f"attention aggregator fit <= one shard's fit ({r['dataset']}, {r['submodel']}, seed {r['seed']})",
                    f"{r['aggregator_s']:.1f} s vs {r['shard_fit_s']:.1f} s",
                    ratio,
                    ratio <= 1.0,
                )
            )
    return out


SPEEDUP_TARGETS = {"sisa": 8.0, "receraser": 5.0, "ultrare": 5.0, "unlearn_als": 3.0}


def methods(rec):
    out = []
    for r in rec["rows"]:
        want = SPEEDUP_TARGETS.get(r["method"])
        if want is not None:
            out.append(
                (
                    f"single-user unlearning on {rec['dataset']}: {r['method']} ({r['submodel']}) >= {want:g}x retrain",
                    f"{r['unlearn_s']:.2f} s vs retrain {r['retrain_s']:.1f} s",
                    r["speedup"],
                    r["speedup"] >= want,
                )
            )
    return out


def bench(rec):
    return [
        ("`make bench` under 10 minutes", f"{rec['seconds'] / 60:.1f} min", rec["seconds"] / 600, rec["seconds"] <= 600)
    ]


# benchmark name -> the targets it measures
TARGETS = {
    "methods": methods,
    "aggregator": aggregator,
    "bpr_vs_implicit": bpr,
    "als_vs_implicit": als,
    "evaluation": evaluation,
    "bench": bench,
}


def machine_text(m: dict) -> str:
    return (
        f"{m.get('cpu')} ({m.get('n_cpus')} cores), {m.get('threads')} threads, load {m.get('load')}, "
        f"commit {m.get('git_commit')}, {m.get('at')}"
    )


def summary(out: Path) -> str:
    lines = [
        "# Performance targets (latest record of each benchmark)",
        "",
        "| target | measured | ratio to target | met | machine |",
        "|---|---|---:|---|---|",
    ]
    for name, fn in TARGETS.items():
        rec = latest(out, name)
        if rec is None:
            lines.append(f"| {name} | not measured (`python -m benchmarks.perf.{name}`) | | | |")
            continue
        for target, measured, ratio, met in fn(rec):
            lines.append(
                f"| {target} | {measured} | {ratio:.2f} | {'yes' if met else '**no**'} | "
                f"{machine_text(rec['machine'])} |"
            )
    return "\n".join([*lines, ""])


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    ap.add_argument("--record-bench", type=float, default=None, metavar="SECONDS")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.record_bench is not None:
        append_record(out, "bench", {"seconds": args.record_bench, "command": "make bench"}, args.threads)
    text = summary(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
