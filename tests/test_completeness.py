import numpy as np
import pytest
import torch

from unlearn.data.interactions import Interactions
from unlearn.metrics.completeness import MembershipProbe, forget_hits, rank_auc, score_gaps


def test_rank_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert rank_auc(pos, neg) == pytest.approx(pairwise)


def test_score_gaps():
    a = torch.arange(12.0).view(3, 4)
    b = a.clone()
    b[1, 2] += 2
    g = score_gaps(lambda u: a[u], lambda u: b[u], 3, 2, torch.device("cpu"))
    assert g["max_abs"] == 2.0 and g["rel_fro"] == pytest.approx(2 / float(b.norm()))


def test_membership_probe_separates_memorised_pairs():
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 60
    forget = Interactions(np.repeat(np.arange(50), 3), rng.integers(0, 30, 150), np.ones(150))
    held = Interactions(np.repeat(np.arange(50), 3), rng.integers(30, 60, 150), np.ones(150))
    scores = torch.zeros(n_users, n_items)
    scores[:, :30] = 1.0  # a model that memorised the forget items
    probe = MembershipProbe(forget, held, n_users, n_items, seed=0)
    assert probe.measure(lambda u: scores[u])["mia_auc"] == 1.0
    assert probe.measure(lambda u: torch.zeros(len(u), n_items))["mia_auc"] == 0.5


def test_forget_hits_counts_pairs_in_top_k():
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    forget = Interactions(np.array([0, 1]), np.array([0, 0]), np.ones(2))
    retained = Interactions(np.array([0]), np.array([1]), np.ones(1))
    hits = forget_hits(lambda u: scores[u], 2, 4, retained, forget, [1, 3], torch.device("cpu"), 8)
    assert hits == {"forget_hit@1": 0.5, "forget_hit@3": 0.5}
