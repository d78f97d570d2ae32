"""RecEraser's balanced partitions (ubp / ibp / inbp): the vectorised greedy assignment against
the released code's pair-by-pair walk, side by side in one process.

    python -m benchmarks.perf.partitioning [--dataset ml1m_receraser] [--ks 5 10 20] [--repeats 3]

For every unit (ubp: users, ibp: items, inbp: interactions) and K:
  - the whole partition as a run builds it (`PARTITIONERS.get(name)`, the partition seed of run
    seed `--seed`): seconds of the clustering (embeddings from the cache; minimum of `--repeats`),
    iterations, whether the assignment stopped changing, and the largest / smallest shard against
    the capacity ceil(1.2 n / K);
  - one assignment step on a score matrix of the same shape and kind (K random anchors among the
    units; for interactions the product of the user and the item distance), timed for
    `greedy_capacity_assign` and for `greedy_capacity_assign_reference`, which walks the n*K
    sorted pairs one at a time as the released code does. The two must give the same shard to
    every unit.
Writes <out>/partitioning.{json,md} and appends the record to <out>/partitioning.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .common import ROOT, limit_threads, partition_embeddings
from .harness import Contender, Timer, command, load_avg, publish

PARTITIONERS_BY_UNIT = {"user": "ubp", "item": "ibp", "interaction": "inbp"}


def score_matrix(unit: str, train, users: torch.Tensor, items: torch.Tensor, k: int, rng) -> torch.Tensor:
    """(n units x K) distances to K random anchors, as one iteration of the partition scores them."""
    from unlearn.partition.balanced import squared_distances

    if unit == "interaction":
        uid, iid = torch.as_tensor(train.users), torch.as_tensor(train.items)
        pick = torch.as_tensor(rng.choice(len(uid), size=k, replace=False))
        return squared_distances(users, users[uid[pick]])[uid] * squared_distances(items, items[iid[pick]])[iid]
    ids = train.users if unit == "user" else train.items
    emb = (users if unit == "user" else items)[torch.as_tensor(np.unique(ids))]
    return squared_distances(emb, emb[torch.as_tensor(rng.choice(len(emb), size=k, replace=False))])


def markdown(res: dict) -> str:
    df = pd.DataFrame(res["rows"])
    return (
        f"# Balanced partitions on {res['dataset']} ({res['n_users']} users, {res['n_items']} items, "
        f"{res['n_train']} training rows; seed {res['seed']})\n\n"
        f"CPU ({res['cpu']}), {res['threads']} thread(s) for torch and BLAS; load average at start / end "
        f"{res['load_avg_start']} / {res['load_avg_end']} (shared machine). Embeddings: {res['embedding']}, "
        f"pretrained in {res['pretrain_s']:.1f} s once and then read from the cache.\n\n"
        "partition_s: the whole partition (all iterations) as a run builds it, minimum of "
        f"{res['repeats']} runs; assign_s ours / released walk: one greedy balanced assignment of the same "
        "score matrix; speedup = released walk / ours; agree: the same shard for every unit.\n\n"
        + df.to_markdown(index=False, floatfmt=".4g")
        + f"\n\nCommand: `{res['command']}`\n"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml1m_receraser")
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--units", nargs="+", default=list(PARTITIONERS_BY_UNIT), choices=list(PARTITIONERS_BY_UNIT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results-dir", default=os.environ.get("UNLEARN_RESULTS_DIR", str(ROOT / "results")))
    parser.add_argument("--out", default=None, help="default: <results-dir>/perf")
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    import unlearn  # noqa: F401  (fills the registries)
    from unlearn.partition.balanced import BalancedPartition, greedy_capacity_assign, greedy_capacity_assign_reference
    from unlearn.registry import PARTITIONERS
    from unlearn.runtime import CPU

    results = Path(args.results_dir)
    embedding = dict(BalancedPartition.defaults["embedding"])
    data, users, items, pretrain_s, cache, seed = partition_embeddings(args.dataset, results, args.seed, embedding)
    train = data.train
    users, items = users.double(), items.double()
    res = {
        "dataset": args.dataset,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train": len(train),
        "seed": args.seed,
        "threads": args.threads,
        "repeats": args.repeats,
        "embedding": embedding,
        "pretrain_s": pretrain_s,
        "cpu": os.uname().machine,
        "torch": torch.__version__,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_avg_start": load_avg(),
        "command": command("partitioning", argv),
        "rows": [],
    }
    rng = np.random.default_rng(args.seed)
    for unit in args.units:
        name = PARTITIONERS_BY_UNIT[unit]
        for k in args.ks:
            cfg = {"name": name, "n_shards": k, "embedding": embedding}
            whole = Timer(
                [
                    Contender(
                        name,
                        step=lambda part: part.partition(train, data.n_users, data.n_items, seed),
                        setup=lambda name=name, cfg=cfg: PARTITIONERS.get(name)(cfg, runtime=CPU, cache_dir=cache),
                        clock=lambda p: p.info["cluster_s"],  # after the (cached) embeddings
                    )
                ]
            ).run(max(1, args.repeats))  # deterministic: every repeat gives the same partition
            p = whole.last[name]
            sizes = np.bincount(
                p.unit_shard[p.unit_shard >= 0] if p.unit_shard is not None else p.row_shard, minlength=k
            )
            scores = score_matrix(unit, train, users, items, k, rng)
            capacity = int(p.info["capacity"])  # same units, same ceil(1.2 n / K)
            step = Timer(
                [
                    Contender("ours", lambda _: greedy_capacity_assign(scores, capacity)),
                    Contender("released walk", lambda _: greedy_capacity_assign_reference(scores.numpy(), capacity)),
                ]
            ).run(1)
            (ours, rounds), walk = step.last["ours"], step.last["released walk"]
            row = {
                "partitioner": name,
                "K": k,
                "units": int(scores.shape[0]),
                "partition_s": whole.best(name),
                "iterations": p.info["iterations"],
                "converged": p.info["converged"],
                "capacity": p.info["capacity"],
                "largest": int(sizes.max()),
                "smallest": int(sizes.min()),
                "assign_s ours": step.median("ours"),
                "assign_s released walk": step.median("released walk"),
                "speedup": step.ratio("released walk", "ours"),
                "greedy rounds": rounds,
                "agree": bool(np.array_equal(ours.numpy(), walk)),
            }
            res["rows"].append(row)
            print(", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in row.items()), flush=True)
    res["load_avg_end"] = load_avg()
    out = Path(args.out) if args.out else results / "perf"
    publish(out, "partitioning", res, args.threads, markdown(res), snapshot=True)
    if not all(r["agree"] for r in res["rows"]):
        print("error: the vectorised assignment differs from the released walk", file=sys.stderr)
        sys.exit(1)
    return res


if __name__ == "__main__":
    main()
