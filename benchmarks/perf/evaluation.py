"""Full-ranking evaluation speed and memory, per dataset, side by side with two peers.

Peers: (a) RecBole-style full sort: `torch.topk` over masked scores with hits gathered from a
dense test matrix (no deterministic tie-breaking); (b) a plain NumPy per-user argsort, the way
most published unlearning code evaluates. All score the same MF factors; the metric values must
agree (ties aside). Each dataset is measured in a fresh process, so that its peak memory is its
own: the peak resident set (VmHWM) is reset after loading the data and read after evaluating
(Linux), i.e. what the evaluation itself adds on top of the loaded dataset and factors.

    python -m benchmarks.perf.evaluation [--datasets ml1m_cure4rec gowalla yelp2018]
        [--peers-on ml1m_cure4rec] [--dim 64] [--repeat 3] [--threads 2]

Appends one record to <out>/evaluation.jsonl and writes <out>/evaluation.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

import numpy as np
import torch

from .common import ROOT, limit_threads, load_named_dataset
from .harness import Contender, Timer, command, publish

K = 20


def recbole_style(user_f, item_f, train, test, n_users, n_items, k, batch=1024):
    """RecBole's full-sort path in spirit: dense masks, topk, gather hits."""
    tr = torch.zeros(n_users, n_items, dtype=torch.bool)
    tr[torch.as_tensor(train.users), torch.as_tensor(train.items)] = True
    te = torch.zeros(n_users, n_items, dtype=torch.bool)
    te[torch.as_tensor(test.users), torch.as_tensor(test.items)] = True
    users = torch.as_tensor(np.unique(test.users))
    disc = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64) + 2)
    recalls, ndcgs = [], []
    for s in range(0, len(users), batch):
        u = users[s : s + batch]
        scores = user_f[u] @ item_f.T
        scores[tr[u]] = -torch.inf
        top = torch.topk(scores, k, dim=1).indices
        hits = te[u].gather(1, top).double()
        n_t = te[u].sum(1).double()
        recalls.append(hits.sum(1) / n_t)
        idcg = torch.cumsum(disc, 0)[(n_t.clamp(max=k) - 1).long()]
        ndcgs.append((hits * disc).sum(1) / idcg)
    return float(torch.cat(recalls).mean()), float(torch.cat(ndcgs).mean())


def numpy_loop(user_f, item_f, train, test, n_users, n_items, k):
    """Per-user argsort in NumPy, as in most released unlearning code."""
    U, V = user_f.numpy(), item_f.numpy()
    train_items = {u: set() for u in range(n_users)}
    for u, i in zip(train.users, train.items):
        train_items[u].add(i)
    test_items: dict[int, set] = {}
    for u, i in zip(test.users, test.items):
        test_items.setdefault(int(u), set()).add(int(i))
    recalls, ndcgs = [], []
    disc = 1.0 / np.log2(np.arange(k) + 2)
    for u, t in test_items.items():
        s = U[u] @ V.T
        s[list(train_items[u])] = -np.inf
        top = np.argsort(-s)[:k]
        hits = np.array([i in t for i in top], dtype=float)
        recalls.append(hits.sum() / len(t))
        ndcgs.append((hits * disc).sum() / disc[: min(k, len(t))].sum())
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MB (VmRSS: now; VmHWM: the peak since the last reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def factors(ds, dim: int):
    """Random MF factors with some signal (one step towards the train co-occurrence), so the
    metrics are not all ~0."""
    g = torch.Generator().manual_seed(0)
    user_f = torch.randn(ds.n_users, dim, generator=g) * 0.1
    item_f = torch.randn(ds.n_items, dim, generator=g) * 0.1
    item_f += (
        0.5
        * torch.zeros(ds.n_items, dim).index_add_(0, torch.as_tensor(ds.train.items), user_f[ds.train.users])
        / torch.as_tensor(np.maximum(ds.train.item_counts(ds.n_items), 1))[:, None]
    )
    return user_f, item_f


def measure(name: str, dim: int, repeat: int, peers: bool, threads: int, cache_dir, queue) -> None:
    """One dataset, in its own process; puts its result dict on `queue`."""
    from unlearn.metrics.ranking import RankingEvaluator

    limit_threads(threads)
    ds = load_named_dataset(name, cache_dir)
    user_f, item_f = factors(ds, dim)
    base_mb = _status_mb("VmRSS")
    reset = _reset_peak()
    ours = Contender(
        "recunlearn",
        lambda ev: ev.evaluate(lambda u: user_f[u] @ item_f.T, groups=False),
        setup=lambda: RankingEvaluator(ds.n_users, ds.n_items, ds.train, ds.test, ks=(K,)),
        score=lambda _, m: (m[f"recall@{K}"], m[f"ndcg@{K}"]),
    )
    mine = Timer([ours]).run(repeat)  # alone: the peak memory is the evaluator's own
    peak = _status_mb("VmHWM")
    t_ours, (recall, ndcg) = mine.best("recunlearn"), mine.score("recunlearn")
    res = {
        "dataset": name,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "n_train": len(ds.train),
        "n_test": len(ds.test),
        "recunlearn_s": t_ours,
        "recall@20": {"recunlearn": recall},
        "ndcg@20": {"recunlearn": ndcg},
        "rss_loaded_mb": base_mb,
        "peak_rss_mb": peak if reset else None,
        "peak_added_mb": (peak - base_mb) if (reset and peak is not None and base_mb is not None) else None,
    }
    if peers:
        args = (user_f, item_f, ds.train, ds.test, ds.n_users, ds.n_items, K)
        by_peer = {"recbole_style": (recbole_style, repeat), "numpy_loop": (numpy_loop, 1)}  # the loop is slow: once
        for peer, (fn, n) in by_peer.items():
            timer = Timer([Contender(peer, lambda _, fn=fn: fn(*args), score=lambda _, m: m)]).run(n)
            res[f"{peer}_s"] = timer.best(peer)
            res[f"ratio_vs_{peer}"] = t_ours / timer.best(peer)
            res["recall@20"][peer], res["ndcg@20"][peer] = timer.score(peer)
    queue.put(res)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["ml1m_cure4rec", "gowalla", "yelp2018"])
    ap.add_argument("--peers-on", nargs="*", default=["ml1m_cure4rec"], help="datasets where the peers run too")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.datasets:
        queue = ctx.Queue()
        proc = ctx.Process(
            target=measure,
            args=(name, args.dim, args.repeat, name in args.peers_on, args.threads, args.cache_dir, queue),
        )
        proc.start()
        res = queue.get()
        proc.join()
        rows.append(res)
        print(res, flush=True)
    record = {
        "k": K,
        "dim": args.dim,
        "repeat": args.repeat,
        "rows": rows,
        "command": command("evaluation", argv),
    }
    publish(Path(args.out), "evaluation", record, args.threads, markdown(record, args.threads))
    return record


def markdown(record: dict, threads: int) -> str:
    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    lines = [
        f"# Full-ranking evaluation (K = {record['k']}, {threads} threads, best of {record['repeat']})",
        "",
        "| dataset | users x items | recunlearn s | peak added MB | RecBole-style s | NumPy loop s | "
        "Recall@20 (ours / RecBole / NumPy) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in record["rows"]:
        recalls = " / ".join(f"{v:.5f}" for v in r["recall@20"].values())
        lines.append(
            f"| {r['dataset']} | {r['n_users']} x {r['n_items']} | {r['recunlearn_s']:.3f} | "
            f"{f(r['peak_added_mb'], '.0f')} | {f(r.get('recbole_style_s'), '.3f')} | "
            f"{f(r.get('numpy_loop_s'), '.3f')} | {recalls} |"
        )
    lines += [
        "",
        "Targets: ML-1M <= 0.25 s; Gowalla and Yelp2018 <= 5 s each within 4 GiB.",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
