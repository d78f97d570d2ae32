"""RecEraser's attention aggregator: the entity schedule (blocks of distinct users x items, each
combined once per step) against the previous entity schedule (user batches against every item)
and the released batch schedule, on the same frozen shards, side by side in one process.

    python -m benchmarks.perf.aggregator [--dataset ml100k] [--submodel bpr] [--seeds 0 1 2] [--k 10]

For every seed: fit RecEraser's shards once (ubp, K shards, the sub-model preset of
conf/submodel/<submodel>.yaml), then fit the aggregator from the same seed with each schedule and
report its seconds, epochs, best validation metric and test Recall@20 / NDCG@20 (full ranking,
train masked), with one shard's mean fit seconds for scale. Appends one record (every run's row) to
<out>/aggregator.jsonl and writes <out>/aggregator.md (mean and std over seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from .common import ROOT, limit_threads, load_named_dataset
from .harness import Contender, Timer, publish

# the entity schedule before item blocks (128 users against every item, patience 10, the sub-model's
# optimiser), kept to compare against
PREVIOUS_ENTITY = "entity:entity_batch=128,item_batch=null,patience=10,optimizer=null,lr=null"


def fit_shards(data, submodel: dict, k: int, seed: int, cache: str):
    from unlearn.data.interactions import TrainSet
    from unlearn.metrics.timing import Span
    from unlearn.registry import METHODS

    spec = {
        "method": {"name": "receraser"},
        "submodel": submodel,
        "partitioner": {"name": "ubp", "n_shards": k},
        "aggregator": {"name": "mean"},
        "seed": seed,
    }
    method = METHODS.get("receraser")(spec, cache_dir=cache)
    cost = method.fit(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    shards = cost.shards_s
    return method, (shards.wall if isinstance(shards, Span) else float(shards)) / k  # wall seconds


def main(argv=None) -> None:
    import unlearn  # noqa: F401
    from unlearn.metrics.ranking import RankingEvaluator
    from unlearn.registry import AGGREGATORS
    from unlearn.seeding import derive_seed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml100k")
    ap.add_argument("--submodel", default="bpr")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--schedules",
        nargs="+",
        default=["batch", PREVIOUS_ENTITY, "entity"],
        help="variants to fit on the same shards: a schedule name, optionally with settings, "
        "e.g. entity:entity_batch=128,lr=0.01",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "cache")
    data = load_named_dataset(args.dataset, cache)
    submodel = yaml.safe_load((ROOT / "conf" / "submodel" / f"{args.submodel}.yaml").read_text())
    agg_cfg = {k: v for k, v in yaml.safe_load((ROOT / "conf" / "aggregator" / "attention.yaml").read_text()).items()}
    test_ev = RankingEvaluator(data.n_users, data.n_items, data.train, data.test, ks=(20,))
    rows = []
    for seed in args.seeds:
        method, shard_s = fit_shards(data, submodel, args.k, seed, cache)
        agg_seed = derive_seed(seed, "aggregator")
        schedules, contenders = {}, {}
        for variant in args.schedules:
            schedule, _, settings = variant.partition(":")
            extra = {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in settings.split(",") if kv}
            cfg = {**agg_cfg, "schedule": schedule, **extra}
            schedules[variant] = schedule
            contenders[variant] = Contender(
                variant,
                step=lambda agg, m=method: agg.fit(m.shards, m.partition, m.data, agg_seed),
                setup=lambda cfg=cfg: AGGREGATORS.get("attention")(cfg, data.n_users, data.n_items),
                score=lambda agg, _, m=method: test_ev.evaluate(lambda u: agg.score(m.shards, u), groups=False),
            )
        timer = Timer(contenders.values()).run(1)  # the schedules in turn, on the same frozen shards
        for variant in timer.names:
            agg, info, test = timer.state[variant], timer.last[variant], timer.score(variant)
            rows.append(
                {
                    "dataset": args.dataset,
                    "submodel": args.submodel,
                    "k": args.k,
                    "seed": seed,
                    "schedule": variant,
                    "aggregator_s": timer.best(variant),
                    "shard_fit_s": shard_s,
                    "epochs": info["epochs"],
                    "best_epoch": info["best_epoch"],
                    "valid": info["valid"],
                    "recall@20": test["recall@20"],
                    "ndcg@20": test["ndcg@20"],
                    "stop_reason": info["stop_reason"],
                    "settings": {
                        "schedule": schedules[variant],
                        **info["settings"],
                        **{k: agg.cfg[k] for k in ("epochs", "eval_every", "patience")},
                    },
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    record = {"dataset": args.dataset, "submodel": args.submodel, "k": args.k, "rows": rows}
    df = pd.DataFrame(rows)
    table = df.groupby("schedule")[["aggregator_s", "epochs", "recall@20", "ndcg@20", "shard_fit_s"]].agg(
        ["mean", "std"]
    )
    title = f"# Attention aggregator schedules: {args.dataset}, {args.submodel}, K = {args.k}, seeds {args.seeds}"
    publish(out, "aggregator", record, args.threads, f"{title}\n\n{table.to_markdown(floatfmt='.4f')}\n")


if __name__ == "__main__":
    main()
