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


# -- numbers that can fail ----------------------------------------------------------


def _ranker(scores):
    return lambda u: scores[u]


def test_rank_gap_is_zero_for_identical_models_and_counts_jaccard():
    from unlearn.metrics.completeness import RankGap

    retained = Interactions(np.array([0, 1]), np.array([0, 0]), np.ones(2))
    forget = Interactions(np.array([2]), np.array([1]), np.ones(1))
    a = torch.tensor([[0.0, 5, 4, 3, 2, 1]] * 3)  # top-2 with item 0 masked for users 0, 1: {1, 2}
    b = torch.tensor([[0.0, 5, 1, 4, 2, 3]] * 3)  # top-2: {1, 3} -> Jaccard 1/3
    gap = RankGap(retained, forget, 3, 6, [2], seed=0)
    ta = gap.tops(_ranker(a))
    assert gap.gap(ta, ta) == {"@2": 0.0, "@2.deleted": 0.0}
    out = gap.gap(ta, gap.tops(_ranker(b)))
    # user 2 (deleted) has nothing masked: a's top-2 {1, 2}, b's {1, 3} too
    assert out["@2"] == pytest.approx(2 / 3) and out["@2.deleted"] == pytest.approx(2 / 3)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_pairs():
    from unlearn.metrics.completeness import bootstrap_auc_ci

    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 4000):
        pos, neg = rng.normal(0.5, 1, n), rng.normal(0, 1, n)
        low, high = bootstrap_auc_ci(pos, neg, np.random.default_rng(1), 300)
        assert low <= rank_auc(pos, neg) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 4  # ~ 1 / sqrt(n): 10x narrower for 100x the pairs


def test_membership_probe_reports_intervals_and_pairs():
    rng = np.random.default_rng(0)
    forget = Interactions(np.repeat(np.arange(50), 3), rng.integers(0, 30, 150), np.ones(150))
    held = Interactions(np.repeat(np.arange(50), 3), rng.integers(30, 60, 150), np.ones(150))
    probe = MembershipProbe(forget, held, 50, 60, seed=0)
    scores = torch.rand(50, 60, generator=torch.Generator().manual_seed(0))
    out = probe.measure(lambda u: scores[u])
    assert probe.n_pairs == 150 and out["mia_auc.ci95"][0] <= out["mia_auc"] <= out["mia_auc.ci95"][1]
    assert out["mia_lr_auc.ci95"][0] <= out["mia_lr_auc"] <= out["mia_lr_auc.ci95"][1]


def test_popularity_forget_hit_matches_a_hand_computation():
    from unlearn.metrics.completeness import popularity_scores

    # retained rows: item counts 0:3, 1:2, 2:1, 3:0 (item 4: 0)
    retained = Interactions(np.array([0, 1, 2, 0, 1, 2]), np.array([0, 0, 0, 1, 1, 2]), np.ones(6))
    # F: user 0 lost items 2 and 4, user 3 (no retained rows) lost item 1
    forget = Interactions(np.array([0, 0, 3]), np.array([2, 4, 1]), np.ones(3))
    pop = popularity_scores(retained, 5)
    hits = forget_hits(pop, 4, 5, retained, forget, [1, 2], torch.device("cpu"), 8)
    # user 0, items 0 and 1 masked: ranking 2 (count 1), 3, 4 (ties by id) -> top1 {2}, top2 {2, 3}
    # user 3, nothing masked: ranking 0, 1, 2 -> top1 {0}, top2 {0, 1}
    assert hits == {"forget_hit@1": pytest.approx(1 / 3), "forget_hit@2": pytest.approx(2 / 3)}


def test_mean_pairwise_cosine():
    from unlearn.metrics.completeness import mean_pairwise_cosine

    same = torch.tensor([[1.0, 2.0]] * 4)
    assert mean_pairwise_cosine(same) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(3)) == pytest.approx(0.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    assert mean_pairwise_cosine(same[:1]) is None


def test_standardised_retrain_gap_ignores_each_users_score_scale():
    a = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    scale = torch.tensor([[2.0], [0.5], [10.0], [1.0], [3.0]])
    g = score_gaps(lambda u: a[u] * scale[u] + 4.0, lambda u: a[u], 5, 2, torch.device("cpu"))
    assert g["rel_fro_std"] == pytest.approx(0.0, abs=1e-6) and g["rel_fro"] > 1.0
