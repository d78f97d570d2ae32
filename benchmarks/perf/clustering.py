"""User clustering for UltraRE's redundancy error: k-means vs RecEraser's balanced `ubp` vs
UltraRE's OT clustering (`ot` with emd and with sinkhorn), on the same pretrained user
embeddings, side by side in one process.

    python -m benchmarks.perf.clustering [--dataset ml1m_cure4rec] [--ks 2 4 8 16] [--seed 0]

The embeddings are pretrained once (the `ot` default embedding config, partition seed of run
seed `--seed`) and cached under <results_dir>/cache, shared with the runner's runs of the same
seed. For every K and partitioner: inertia (sum of squared distances of the users to their
group's mean, i.e. the final centroids: the quantity k-means minimises, computed the same way for
every partitioner), wall seconds of the clustering (the minimum over `--repeats` runs; the
embeddings come from the cache; the partitioners of one K run interleaved, repeat by repeat), and
the largest and smallest group size. Writes <results_dir>/tables/ultrare_clustering.{md,csv} and
appends the rows to <results_dir>/perf/clustering.jsonl.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .common import ROOT, limit_threads, partition_embeddings
from .harness import Contender, Timer, publish


def group_inertia(x: np.ndarray, labels: np.ndarray, k: int) -> float:
    onehot = np.zeros((len(x), k))
    onehot[np.arange(len(x)), labels] = 1.0
    counts = onehot.sum(0)
    means = (onehot.T @ x) / np.maximum(counts, 1)[:, None]
    return float(((x - means[labels]) ** 2).sum())


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml1m_cure4rec")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", default=os.environ.get("UNLEARN_RESULTS_DIR", str(ROOT / "results")))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell; the minimum is reported")
    args = parser.parse_args(argv)
    limit_threads(args.threads)  # numpy's BLAS (ot.dist, centroid means) too

    import ot  # noqa: F401  (POT's import takes seconds: not part of any timing)

    import unlearn  # noqa: F401  (fills the registries)
    from unlearn.partition.ot import OTPartition
    from unlearn.registry import PARTITIONERS
    from unlearn.runtime import CPU

    results = Path(args.results_dir)
    embedding = dict(OTPartition.defaults["embedding"])
    t0 = time.perf_counter()
    data, users, _, pretrain_s, cache, seed = partition_embeddings(args.dataset, results, args.seed, embedding)
    train = data.train
    print(
        f"embeddings of {args.dataset}: {tuple(users.shape)}, pretraining took {pretrain_s:.1f}s "
        f"(recorded in the cache); {time.perf_counter() - t0:.1f}s here with the data"
    )
    present = np.flatnonzero(train.user_mask(data.n_users))
    x = users[torch.as_tensor(present)].double().numpy()

    candidates = [
        ("kmeans", "kmeans", {}),
        ("ubp", "ubp", {}),
        ("ot (emd)", "ot", {"solver": "emd"}),
        ("ot (sinkhorn)", "ot", {"solver": "sinkhorn"}),
    ]
    rows, notes = [], []
    for k in args.ks:
        contenders = []
        for label, name, extra in candidates:
            if name not in PARTITIONERS:
                note = f"{label}: partitioner '{name}' is not registered in this tree; skipped"
                if note not in notes:
                    notes.append(note)
                    print("note:", note)
                continue
            cfg = {"name": name, "n_shards": k, "embedding": embedding, **extra}
            contenders.append(
                Contender(
                    label,
                    step=lambda part: part.partition(train, data.n_users, data.n_items, seed),
                    setup=lambda name=name, cfg=cfg: PARTITIONERS.get(name)(cfg, runtime=CPU, cache_dir=cache),
                    score=lambda _, p: p.unit_shard[present],
                    clock=lambda p: p.info["cluster_s"],  # after the (cached) embeddings
                )
            )
        timer = Timer(contenders).run(max(1, args.repeats))  # deterministic: every repeat gives the same partition
        for label in timer.names:
            p, labels = timer.last[label], timer.score(label)
            sizes = np.bincount(labels, minlength=k)
            row = {
                "K": k,
                "partitioner": label,
                "inertia": group_inertia(x, labels, k),
                "seconds": timer.best(label),
                "largest": int(sizes.max()),
                "smallest": int(sizes.min()),
                "iterations": p.info.get("iterations", p.info.get("iterations_run")),
            }
            rows.append(row)
            print(", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in row.items()))
    df = pd.DataFrame(rows)
    out = results / "tables"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "ultrare_clustering.csv", index=False)
    source = ", ".join(f"{k}={v}" for k, v in embedding.items())  # the one source every partitioner here reads
    header = (
        f"# User clustering on {args.dataset} ({len(present)} users, {embedding['name']} embeddings, "
        f"dim {users.shape[1]}; seed {args.seed})\n\n"
        f"Embedding source (shared by every clustering partitioner below): {source}.\n\n"
        "inertia: sum of squared distances of users to their group mean; seconds: clustering wall "
        f"time on CPU ({args.threads} thread(s) for torch and BLAS, minimum of {args.repeats} runs; "
        "embeddings from cache); "
        "largest/smallest: group sizes in users; iterations: clustering iterations run.\n\n"
    )
    text = header + df.to_markdown(index=False, floatfmt=".4g") + "\n"
    if notes:
        text += "\n" + "\n".join(f"Note: {n}." for n in notes) + "\n"
    (out / "ultrare_clustering.md").write_text(text)
    print(f"wrote {out / 'ultrare_clustering.md'} and .csv")
    record = {"dataset": args.dataset, "seed": args.seed, "repeats": args.repeats, "embedding": embedding, "rows": rows}
    publish(results / "perf", "clustering", record, args.threads)
    return df


if __name__ == "__main__":
    main()
