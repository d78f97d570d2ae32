"""Fit and single-user unlearning seconds of every method, one run each through the runner (the
same lifecycle a user runs), with retrain's time for the same request beside them.

    python -m benchmarks.perf.methods [--dataset ml1m_cure4rec] [--methods retrain sisa receraser ultrare unlearn_als]
        [--seed 0] [--threads 2] [--results-dir results/perf/methods_runs] [overrides ...]

Each method deletes one random user (`deletion=users_stream deletion.rounds=1`) with its preset
(K = 10 for the sharded ones); the exact replica is skipped (`completeness.exact_replica=false`):
this measures cost, `make test` and the tables check exactness. Runs whose record exists are
skipped, as always. Appends one record to <out>/methods.jsonl and writes <out>/methods.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .common import ROOT
from .harness import command, publish

COLUMNS = ("fit_s", "unlearn_s", "retrain_s", "speedup", "n_shards_retrained", "n_shards", "after.ndcg@20")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ml1m_cure4rec")
    ap.add_argument("--methods", nargs="+", default=["retrain", "sisa", "receraser", "ultrare", "unlearn_als"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results-dir", default=str(ROOT / "results" / "perf" / "methods_runs"))
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    args, overrides = ap.parse_known_args(argv)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "-m",
        f"dataset={args.dataset}",
        f"method={','.join(args.methods)}",
        "deletion=users_stream",
        "deletion.rounds=1",
        f"seed={args.seed}",
        "completeness.exact_replica=false",
        f"runtime.threads={args.threads}",
        "runtime.progress=false",
        f"results_dir={args.results_dir}",
        *overrides,
    ]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise SystemExit("error: the methods sweep failed; see its log above")
    rows = []
    for path in sorted(Path(args.results_dir).glob("runs/*/result.json")):
        rec = json.loads(path.read_text())
        if (
            rec.get("status") == "ok"
            and rec["dataset"] == args.dataset
            and rec["method"] in args.methods
            and rec["seed"] == args.seed
            and rec.get("deletion.count") == 1
            and rec["deletion.rounds"] == 1
        ):
            rows.append(
                {
                    "method": rec["method"],
                    "submodel": rec["submodel"],
                    "run_id": rec["run_id"],
                    **{c: rec.get(c) for c in COLUMNS},
                }
            )
    rows.sort(key=lambda r: args.methods.index(r["method"]))
    record = {
        "dataset": args.dataset,
        "seed": args.seed,
        "rows": rows,
        "command": command("methods", argv),
    }
    publish(Path(args.out), "methods", record, args.threads, markdown(record))
    return record


def markdown(record: dict) -> str:
    lines = [
        f"# Fit and single-user unlearning, {record['dataset']}, seed {record['seed']}",
        "",
        "| method | sub-model | fit s | unlearn s | retrain s | speedup | shards retrained | NDCG@20 after |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['method']} | {r['submodel']} | {r['fit_s']:.1f} | {r['unlearn_s']:.2f} | "
            f"{r['retrain_s']:.1f} | {r['speedup']:.1f} | {r['n_shards_retrained']} of {r['n_shards']} | "
            f"{r['after.ndcg@20']:.4f} |"
        )
    return "\n".join([*lines, "", f"Command: `{record['command']}`", ""])


if __name__ == "__main__":
    main()
