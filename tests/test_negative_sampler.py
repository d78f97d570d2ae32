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
