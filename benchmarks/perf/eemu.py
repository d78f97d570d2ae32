"""EEMU's costs, side by side: one meta-training epoch of one shard under `meta_update: sequential`
(the released per-user updates) and `batched` (vmap), and one full evaluation (every user adapted
on every shard and scored against every item) under `adapt: user_tower` and `adapt: all`.

One shard of the `user_split` partition (K shards, every user in each) is meta-trained for
`--epochs` epochs with `selection: last` (no validation read), so the seconds are the update's
own. The evaluation is timed on that shard's model for the first `--eval-users` users (all users
for `user_tower` by default; `adapt: all` costs an item-tower pass over every item per user, so it
is timed on a sample) and scaled to all users and K shards: every (user, shard) pair costs the
same. The sub-model preset gives the tower sizes (`twotower`: the released ones).

    python -m benchmarks.perf.eemu [--dataset ml1m_cure4rec_loo] [--submodel twotower]
        [--n-shards 8] [--modes sequential batched] [--epochs 1] [--adapt user_tower all]
        [--eval-users 0 64] [--threads 2]

Appends one record to <out>/eemu.jsonl and writes <out>/eemu.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from .common import ROOT, limit_threads, load_named_dataset
from .harness import Contender, Timer, publish


def preset(group: str, name: str) -> dict:
    path = ROOT / "conf" / group / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise SystemExit(f"error: unknown {group} preset '{name}'. Valid: {names}.")
    cfg = yaml.safe_load(path.read_text())
    cfg.pop("defaults", None)
    return cfg


def shard_zero(data, n_shards: int, seed: int):
    """Shard 0 of the user_split partition of the whole train set, and its query flags."""
    from unlearn.data import TrainSet
    from unlearn.registry import PARTITIONERS

    full = TrainSet(data.n_users, data.n_items, data.train, data.valid, features=data.info.get("features"))
    part = PARTITIONERS.get("user_split")({"n_shards": n_shards, "query_len": 1}).partition(
        full.train, data.n_users, data.n_items, seed
    )
    sel = part.row_shard == 0
    return full, full.select(sel), part.info["query"][sel]


def build_tower(full, submodel: dict):
    from unlearn.registry import SUBMODELS

    model = SUBMODELS.get("twotower")(full.n_users, full.n_items, submodel)
    feats = full.features.get() if full.features is not None else None
    model.build(feats)
    return model


def meta_epochs(full, shard, query, submodel, method_cfg, mode, epochs, seed) -> Contender:
    """Meta-training one shard under `meta_update: mode` from a fresh model; its clock is the
    seconds per meta-epoch meta_train reports (the update's own, no validation read)."""
    from unlearn.methods.eemu import meta
    from unlearn.runtime import CPU

    cfg = {**method_cfg, "meta_update": mode, "meta_epochs": epochs, "selection": "last"}

    def step(_):
        model = build_tower(full, submodel)
        report = meta.meta_train(model, shard, query, cfg, seed, CPU, valid_seed=seed, shard_key=seed)
        return model, float(report.extra["epoch_s"])

    return Contender(mode, step, clock=lambda out: out[1])


def evaluation(model, full, method_cfg, adapt, n_users) -> Contender:
    """Adapting and scoring the first `n_users` users (0: all) on one shard under `adapt`; set-up
    (untimed): the adapter."""
    from unlearn.methods.eemu import meta
    from unlearn.runtime import CPU

    cfg = {**method_cfg, "adapt": adapt}

    def setup():
        adapter = meta.Adapter(full.train, full.n_users, full.n_items, cfg, CPU.device)
        return adapter, torch.arange(n_users if n_users > 0 else full.n_users)

    def step(state):
        adapter, users = state
        with torch.no_grad():
            meta.blocked_scores(adapter, model, users, 0, int(cfg["score_block"]))

    return Contender(adapt, step, setup, score=lambda state, _: len(state[1]))


def scaled(seconds: float, users: int, full, n_shards: int) -> dict:
    """The seconds of `users` users on one shard, and that scaled to all users and K shards."""
    per_pair = seconds / users
    return {
        "users_timed": int(users),
        "seconds_timed": seconds,
        "ms_per_user_shard": 1000 * per_pair,
        "full_eval_s": per_pair * full.n_users * n_shards,
        "extrapolated": bool(users < full.n_users),
    }


def markdown(rec: dict) -> str:
    lines = [
        f"# EEMU costs: {rec['dataset']}, {rec['submodel']} towers, K = {rec['n_shards']}, "
        f"{rec['n_users']} users x {rec['n_items']} items, {rec['shard_rows']} rows in shard 0",
        "",
        "| meta_update | s per shard meta-epoch | s per meta-epoch, all K shards |",
        "|---|---|---|",
    ]
    for mode, s in rec["meta_epoch_s"].items():
        lines.append(f"| {mode} | {s:.2f} | {s * rec['n_shards']:.1f} |")
    if len(rec["meta_epoch_s"]) == 2:
        a, b = rec["meta_epoch_s"].values()
        lines.append(f"\nratio {'/'.join(rec['meta_epoch_s'])}: {a / b:.2f}")
    lines += ["", "| adapt | users timed | ms per (user, shard) | one full evaluation, s |", "|---|---|---|---|"]
    for adapt, e in rec["evaluation"].items():
        note = " (scaled)" if e["extrapolated"] else ""
        lines.append(f"| {adapt} | {e['users_timed']} | {e['ms_per_user_shard']:.2f} | {e['full_eval_s']:.1f}{note} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml1m_cure4rec_loo")
    ap.add_argument("--submodel", default="twotower", help="a conf/submodel preset of the two-tower")
    ap.add_argument("--method", default="eemu", help="a conf/method preset of EEMU (its lr, batch, n_adapt)")
    ap.add_argument("--n-shards", type=int, default=8)
    ap.add_argument("--modes", nargs="+", default=["sequential", "batched"], choices=["sequential", "batched"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--adapt", nargs="+", default=["user_tower", "all"], choices=["user_tower", "all"])
    ap.add_argument(
        "--eval-users",
        nargs="+",
        type=int,
        default=[0, 64],
        help="users timed per adapt mode, in --adapt's order (0: all)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    args = ap.parse_args(argv)
    if len(args.eval_users) != len(args.adapt):
        raise SystemExit("error: give one --eval-users count per --adapt mode.")
    limit_threads(args.threads)
    data = load_named_dataset(args.dataset, args.cache_dir)
    submodel, method_cfg = preset("submodel", args.submodel), preset("method", args.method)
    from unlearn.methods.eemu import EEMU

    method_cfg = {**EEMU.defaults, **method_cfg}
    full, shard, query = shard_zero(data, args.n_shards, args.seed)
    rec = {
        "dataset": args.dataset,
        "submodel": args.submodel,
        "method": args.method,
        "n_shards": args.n_shards,
        "n_users": int(full.n_users),
        "n_items": int(full.n_items),
        "shard_rows": int(len(shard.train)),
        "meta_batch": int(method_cfg["meta_batch"]),
        "epochs": args.epochs,
        "meta_epoch_s": {},
        "evaluation": {},
    }
    modes = [meta_epochs(full, shard, query, submodel, method_cfg, m, args.epochs, args.seed) for m in args.modes]
    timer = Timer({c.name: c for c in modes}.values()).run(1)
    for mode in timer.names:
        rec["meta_epoch_s"][mode] = timer.best(mode)
        print(f"{mode}: {rec['meta_epoch_s'][mode]:.2f} s per shard meta-epoch", flush=True)
    if timer.names:
        model = timer.last[args.modes[-1]][0]
    else:
        model = build_tower(full, submodel)
        model.reset_parameters(torch.Generator().manual_seed(args.seed))
    model.requires_grad_(False)
    adapts = dict(zip(args.adapt, args.eval_users))
    timer = Timer(evaluation(model, full, method_cfg, a, n) for a, n in adapts.items()).run(1)
    for adapt in timer.names:
        rec["evaluation"][adapt] = scaled(timer.best(adapt), timer.score(adapt), full, args.n_shards)
        print(f"{adapt}: {rec['evaluation'][adapt]['full_eval_s']:.1f} s per full evaluation", flush=True)
    publish(Path(args.out), "eemu", rec, args.threads, markdown(rec))
    return rec


if __name__ == "__main__":
    main()
