"""SISA-family exactness: untouched shards bit-identical, touched shards equal the replica."""

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.data.deletion import draw
from unlearn.errors import ConfigError
from unlearn.registry import METHODS, SUBMODELS


def spec(method, partitioner, aggregator, submodel, seed=0):
    return {
        "method": {"name": method},
        "submodel": submodel,
        "partitioner": partitioner,
        "aggregator": {"name": aggregator},
        "seed": seed,
    }


def fit(d, s):
    m = METHODS.get(s["method"]["name"])(s)
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    return m


def all_scores(m, n_users):
    return m.score(torch.arange(n_users))


@pytest.mark.parametrize("unit, aggregator", [("user", "mean"), ("user", "own"), ("interaction", "mean")])
def test_sisa_unlearning_equals_exact_replica(synthetic, fast_bpr, unit, aggregator):
    d = synthetic
    s = spec("sisa", {"name": "random", "n_shards": 4, "unit": unit}, aggregator, fast_bpr)
    m = fit(d, s)
    before = [{k: v.clone() for k, v in sh.state_dict().items()} for sh in m.shards]
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 2}, 0)
    report = m.unlearn(req.rows)
    touched = report.shards_retrained
    assert touched == sorted(set(m.partition.row_shard[req.rows].tolist()))
    for k, sh in enumerate(m.shards):
        if k not in touched:  # bit-identical, not merely close
            assert all(torch.equal(sh.state_dict()[n], before[k][n]) for n in before[k])
    rep = m.exact_replica(TrainSet(d.n_users, d.n_items, d.train, d.valid).without(req.rows))
    assert torch.equal(all_scores(m, d.n_users), all_scores(rep, d.n_users))


def test_user_deletion_touches_only_the_owning_shard(synthetic, fast_bpr):
    d = synthetic
    m = fit(d, spec("sisa", {"name": "random", "n_shards": 5, "unit": "user"}, "mean", fast_bpr))
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 1}, 0)
    assert len(m.unlearn(req.rows).shards_retrained) == 1


def test_same_seed_same_model_and_different_seed_differs(synthetic, fast_bpr):
    d = synthetic
    s = spec("retrain", {"name": "none", "n_shards": 1}, "none", fast_bpr)
    a, b = fit(d, s), fit(d, s)
    c = fit(d, spec("retrain", {"name": "none", "n_shards": 1}, "none", fast_bpr, seed=1))
    assert torch.equal(all_scores(a, d.n_users), all_scores(b, d.n_users))
    assert not torch.equal(all_scores(a, d.n_users), all_scores(c, d.n_users))


def test_retrain_unlearning_is_a_fresh_fit(synthetic, fast_bpr):
    d = synthetic
    s = spec("retrain", {"name": "none", "n_shards": 1}, "none", fast_bpr)
    m = fit(d, s)
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 1, "rounds": 3}, 0)
    for rows in req.rounds:
        m.unlearn(rows)
    fresh = METHODS.get("retrain")(s)
    fresh.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid).without(req.rows))
    assert torch.equal(all_scores(m, d.n_users), all_scores(fresh, d.n_users))


def test_negative_sampling_reads_only_the_shard(synthetic):
    """A shard's negatives are rejected against the shard's positives, so a shard model is
    unchanged by rows that live in other shards. Split by interaction, so the other shard holds
    more positives of the same users: a model fitted on the full data with the other rows not
    retained (they are still in `data.rows`) equals one fitted on data that never held them."""
    d = synthetic
    mine = np.random.default_rng(0).random(len(d.train)) < 0.5
    full = TrainSet(d.n_users, d.n_items, d.train, d.valid)
    shared_users = set(d.train.users[mine].tolist()) & set(d.train.users[~mine].tolist())
    assert len(shared_users) > d.n_users // 2
    cfg = {"dim": 8, "epochs": 3, "patience": 0}
    a = SUBMODELS.get("bpr")(d.n_users, d.n_items, cfg)
    a.fit(full.without(np.flatnonzero(~mine)), 7)
    b = SUBMODELS.get("bpr")(d.n_users, d.n_items, cfg)
    b.fit(TrainSet(d.n_users, d.n_items, d.train.subset(np.flatnonzero(mine)), d.valid), 7)
    assert torch.equal(a.item_emb, b.item_emb) and torch.equal(a.user_emb, b.user_emb)


@pytest.mark.parametrize(
    "part, agg, match",
    [
        ({"name": "random", "n_shards": 4}, "none", "aggregator=none serves a single model"),
        ({"name": "random", "n_shards": 4, "unit": "interaction"}, "own", "aggregator=own needs a partition by user"),
    ],
)
def test_incompatible_axes_are_refused_before_training(synthetic, fast_bpr, part, agg, match):
    with pytest.raises(ConfigError, match=match):
        m = METHODS.get("sisa")(spec("sisa", part, agg, fast_bpr))
        m.partitioner.validate(synthetic.train, synthetic.n_users, synthetic.n_items)


def test_more_shards_than_units_is_refused(synthetic, fast_bpr):
    m = METHODS.get("sisa")(spec("sisa", {"name": "random", "n_shards": 10_000}, "mean", fast_bpr))
    with pytest.raises(ConfigError, match="n_shards=10000 is larger than the number of users"):
        m.partitioner.validate(synthetic.train, synthetic.n_users, synthetic.n_items)


def test_random_partition_is_balanced_and_seeded(synthetic):
    from unlearn.registry import PARTITIONERS

    p = PARTITIONERS.get("random")({"n_shards": 7, "unit": "user"})
    a = p.partition(synthetic.train, synthetic.n_users, synthetic.n_items, 1)
    b = p.partition(synthetic.train, synthetic.n_users, synthetic.n_items, 1)
    sizes = a.sizes(synthetic.train)
    assert max(sizes) - min(sizes) <= 1 and np.array_equal(a.row_shard, b.row_shard)
