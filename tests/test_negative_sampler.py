"""The negative sampler: negatives never hit the component's own positives, and the fast path
(sorted queries, re-checking only redrawn entries) draws exactly what checking every entry every
round draws."""

import torch

from unlearn.training import NegativeSampler


def reference_sample(keys, n_items, users, gen, max_rounds=100):
    """The plain algorithm: each round, re-check every entry against the positives."""
    neg = torch.randint(0, n_items, (len(users),), generator=gen)
    for _ in range(max_rounds):
        k = users * n_items + neg
        pos = torch.searchsorted(keys, k).clamp(max=len(keys) - 1)
        bad = (keys[pos] == k).nonzero().flatten()
        if len(bad) == 0:
            break
        neg[bad] = torch.randint(0, n_items, (len(bad),), generator=gen)
    return neg


def test_fast_sampler_draws_what_the_plain_one_draws_and_never_a_positive():
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 50, 30
    dense = torch.rand(n_users, n_items, generator=g) < 0.6  # dense users: many redraw rounds
    users, items = dense.nonzero().unbind(1)
    sampler = NegativeSampler(users, items, n_items)
    query = users[torch.randperm(len(users), generator=g)]
    fast = sampler.sample(query, torch.Generator().manual_seed(7))
    plain = reference_sample(sampler.keys, n_items, query, torch.Generator().manual_seed(7))
    assert torch.equal(fast, plain)
    assert not dense[query, fast].any()


def test_is_positive_matches_a_dense_lookup_and_handles_no_positives():
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(20, 15, generator=g) < 0.3
    users, items = dense.nonzero().unbind(1)
    sampler = NegativeSampler(users, items, 15)
    qu, qi = torch.randint(0, 20, (500,), generator=g), torch.randint(0, 15, (500,), generator=g)
    assert torch.equal(sampler.is_positive(qu, qi), dense[qu, qi])
    empty = NegativeSampler(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 15)
    assert not empty.is_positive(qu, qi).any() and len(empty.sample(qu, g)) == 500


def test_block_negatives_stay_in_the_block_and_never_hit_a_positive():
    from unlearn.training import block_negatives

    g = torch.Generator().manual_seed(1)
    positive = torch.rand(40, 12, generator=g) < 0.7  # dense block: many redraw rounds
    positive[:, 0] = False  # every row keeps a negative to find
    rows = positive.nonzero()[:, 0]
    neg = block_negatives(positive, rows, torch.Generator().manual_seed(3))
    assert neg.min() >= 0 and neg.max() < positive.shape[1]
    assert not positive[rows, neg].any()
    again = block_negatives(positive, rows, torch.Generator().manual_seed(3))
    assert torch.equal(neg, again)


def test_pair_scores_dense_block_and_gathered_pairs_agree_in_value_and_gradient():
    from unlearn import training

    g = torch.Generator().manual_seed(0)
    p = torch.randn(30, 8, generator=g, dtype=torch.float64)
    q = torch.randn(20, 8, generator=g, dtype=torch.float64)
    rows, cols = torch.randint(0, 30, (400,), generator=g), torch.randint(0, 20, (400,), generator=g)
    out = []
    for density in (0.0, 2.0):  # 0: the pairs always fill the block (dense path); 2: never (gather)
        old = training.DENSE_PAIR_DENSITY
        training.DENSE_PAIR_DENSITY = density
        try:
            pp, qq = p.clone().requires_grad_(), q.clone().requires_grad_()
            s = training.pair_scores(pp, qq, rows, cols)
            (s * torch.arange(len(s), dtype=s.dtype)).sum().backward()
            out.append((s.detach(), pp.grad, qq.grad))
        finally:
            training.DENSE_PAIR_DENSITY = old
    assert torch.allclose(out[0][0], (p[rows] * q[cols]).sum(1))
    for a, b in zip(*out):
        assert torch.allclose(a, b)
