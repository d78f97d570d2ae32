"""The batched full-sort evaluator against a brute-force per-user reference."""

import math

import numpy as np
import pytest
import torch

from unlearn.data.interactions import Interactions
from unlearn.metrics.ranking import RankingEvaluator, active_mask, topk_stable


def brute_force(scores, exclude, target, ks, ideal="capped"):
    """Per user: rank all items by (-score, item id), excluded items removed."""
    n_users, n_items = scores.shape
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "hr", "precision") for k in ks}
    for u in range(n_users):
        t = set(target.get(u, ()))
        if not t:
            continue
        ex = set(exclude.get(u, ()))
        ranked = sorted(range(n_items), key=lambda i: (-scores[u, i] if i not in ex else math.inf, i))
        for k in ks:
            top = ranked[:k]
            hits = [1.0 if i in t else 0.0 for i in top]
            n_ideal = min(k, len(t)) if ideal == "capped" else len(t)
            idcg = sum(1 / math.log2(r + 2) for r in range(n_ideal))
            out[f"recall@{k}"].append(sum(hits) / len(t))
            out[f"precision@{k}"].append(sum(hits) / k)
            out[f"hr@{k}"].append(float(sum(hits) > 0))
            out[f"ndcg@{k}"].append(sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / idcg)
    return {k: float(np.mean(v)) for k, v in out.items()}


def random_case(seed, n_users=40, n_items=30, tie_levels=4):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, tie_levels, size=(n_users, n_items)).astype(np.float32)  # many ties
    exclude, target = {}, {}
    for u in range(n_users):
        items = rng.permutation(n_items)
        n_ex = int(rng.integers(0, 8))
        n_t = [0, 1, int(rng.integers(2, 15))][u % 3]  # users with 0, 1 and many test items
        exclude[u] = list(items[:n_ex])
        target[u] = list(items[n_ex : n_ex + n_t])

    def to_rows(d):
        pairs = [(u, i) for u, items in d.items() for i in items]
        return Interactions(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), np.ones(len(pairs)))

    return scores, exclude, target, to_rows(exclude), to_rows(target)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ideal", ["capped", "all"])
def test_matches_brute_force(seed, ideal):
    scores, ex, tg, ex_rows, tg_rows = random_case(seed)
    ks = (1, 5, 10, 25)
    ev = RankingEvaluator(len(scores), scores.shape[1], ex_rows, tg_rows, ks=ks, batch_size=7, ndcg_ideal=ideal)
    s = torch.as_tensor(scores)
    got = ev.evaluate(lambda u: s[u], groups=False)
    want = brute_force(scores, ex, tg, ks, ideal)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_independent_of_batch_size():
    scores, _, _, ex_rows, tg_rows = random_case(5, n_users=60, tie_levels=3)
    s = torch.as_tensor(scores)
    results = [
        RankingEvaluator(60, 30, ex_rows, tg_rows, ks=(5, 10), batch_size=b).evaluate(lambda u: s[u])
        for b in (1, 7, 64, 1000)
    ]
    assert all(r == results[0] for r in results[1:])


def test_users_without_test_items_are_not_evaluated():
    scores, _, tg, ex_rows, tg_rows = random_case(3)
    ev = RankingEvaluator(40, 30, ex_rows, tg_rows, ks=(5,))
    assert set(ev.users.tolist()) == {u for u, t in tg.items() if t}


def test_topk_stable_breaks_ties_by_item_id():
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]])
    assert topk_stable(scores, 4).tolist() == [[1, 2, 4, 5]]


def test_active_users_are_top_five_percent():
    counts = np.arange(100)
    mask = active_mask(counts, np.arange(100), 0.05)
    assert mask.sum() == 5 and set(np.flatnonzero(mask)) == {95, 96, 97, 98, 99}
