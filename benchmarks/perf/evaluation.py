"""Full-ranking evaluation speed on ML-1M, side by side with two peers, in one process.

Peers: (a) RecBole-style full sort: `torch.topk` over masked scores with hits gathered from a
dense test matrix (no deterministic tie-breaking); (b) a plain NumPy per-user argsort, the way
most published unlearning code evaluates. All three score the same MF factors; the metric values
must agree (ties aside) and the times are written to results/perf/evaluation.{json,md}.

    python -m benchmarks.perf.evaluation [dataset=ml1m_cure4rec] [dim=64] [repeat=3]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf

from unlearn.data import load_dataset
from unlearn.metrics.ranking import RankingEvaluator

ROOT = Path(__file__).resolve().parents[2]


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


def timed(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> dict:
    args = OmegaConf.from_dotlist(list(sys.argv[1:] if argv is None else argv))
    name, dim, repeat, k = args.get("dataset", "ml1m_cure4rec"), int(args.get("dim", 64)), int(args.get("repeat", 3)), 20
    ds = load_dataset(yaml.safe_load((ROOT / "conf" / "dataset" / f"{name}.yaml").read_text()))
    g = torch.Generator().manual_seed(0)
    user_f = torch.randn(ds.n_users, dim, generator=g) * 0.1
    item_f = torch.randn(ds.n_items, dim, generator=g) * 0.1
    # give the factors signal, so metrics are not all ~0: one step towards the train co-occurrence
    item_f += 0.5 * torch.zeros(ds.n_items, dim).index_add_(0, torch.as_tensor(ds.train.items), user_f[ds.train.users]) / \
        torch.as_tensor(np.maximum(ds.train.item_counts(ds.n_items), 1))[:, None]
    ours_ev = RankingEvaluator(ds.n_users, ds.n_items, ds.train, ds.test, ks=(k,))
    t_ours, m_ours = timed(lambda: ours_ev.evaluate(lambda u: user_f[u] @ item_f.T, groups=False), repeat)
    t_rb, m_rb = timed(lambda: recbole_style(user_f, item_f, ds.train, ds.test, ds.n_users, ds.n_items, k), repeat)
    t_np, m_np = timed(lambda: numpy_loop(user_f, item_f, ds.train, ds.test, ds.n_users, ds.n_items, k), 1)
    result = {
        "dataset": name, "n_users": ds.n_users, "n_items": ds.n_items, "k": k, "threads": torch.get_num_threads(),
        "recunlearn_s": t_ours, "recbole_style_s": t_rb, "numpy_loop_s": t_np,
        "ratio_vs_recbole_style": t_ours / t_rb, "ratio_vs_numpy_loop": t_ours / t_np,
        "recall@20": {"recunlearn": m_ours[f"recall@{k}"], "recbole_style": m_rb[0], "numpy_loop": m_np[0]},
        "ndcg@20": {"recunlearn": m_ours[f"ndcg@{k}"], "recbole_style": m_rb[1], "numpy_loop": m_np[1]},
    }
    out = ROOT / "results" / "perf"
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))
    (out / "evaluation.md").write_text(
        f"# Full-ranking evaluation, {name} ({ds.n_users} users x {ds.n_items} items, K={k}, {result['threads']} threads)\n\n"
        "| evaluator | seconds (best of repeats) | Recall@20 | NDCG@20 |\n|---|---:|---:|---:|\n"
        + "".join(f"| {n} | {result[n + '_s']:.3f} | {result['recall@20'][n]:.5f} | {result['ndcg@20'][n]:.5f} |\n"
                  for n in ("recunlearn", "recbole_style", "numpy_loop")))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
