"""UltraRE: OT partition balance, emd vs sinkhorn, k-means, the mse / bce sub-models, the linear
combiner's refit, exactness after unlearning, and one deleted user touching one group."""

import numpy as np
import pytest
import torch

from unlearn.aggregate.linear import Linear, positives_hash
from unlearn.data import load_dataset
from unlearn.data.interactions import Interactions, TrainSet
from unlearn.errors import ConfigError
from unlearn.partition.kmeans import lloyd_kmeans
from unlearn.partition.ot import capacities, capacity_rounding, ot_clustering
from unlearn.registry import METHODS, PARTITIONERS, SUBMODELS
from unlearn.seeding import derive_seed

TINY_EMB = {"name": "bpr", "epochs": 3, "dim": 8, "lr": 0.01, "batch_size": 256}


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        {"name": "synthetic", "loader": "synthetic", "generator": {"n_users": 120, "n_items": 80, "mean_per_user": 15}}
    )


def spec(sub="bpr", part=None, agg=None, k=4, seed=0):
    return {
        "method": {"name": "ultrare"},
        "submodel": {"name": sub, "dim": 16, "epochs": 6, "patience": 2, "lr": 0.01, "batch_size": 256},
        "partitioner": {"name": "ot", "n_shards": k, "embedding": TINY_EMB, **(part or {})},
        "aggregator": {"name": "linear", **(agg or {})},
        "seed": seed,
    }


def minus(data, rows, users=()):
    """Train minus the rows of `users` (their validation rows leave with them)."""
    return TrainSet(data.n_users, data.n_items, data.train, data.valid).without(rows)


def max_gap(a, b, n_users):
    users = torch.arange(n_users)
    with torch.no_grad():
        return float((a.score(users) - b.score(users)).abs().max())


def blobs(n_per=40, k=4, d=6, seed=0, spread=20.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centers])
    return x, np.repeat(np.arange(k), n_per)


def same_partition(a, b):
    """Equal up to a permutation of the labels."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# -- the OT partitioner ---------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(103, 7), (100, 4), (61, 16), (50, 3)])
def test_ot_emd_uniform_groups_differ_by_at_most_one(n, k):
    x = np.random.default_rng(n).normal(size=(n, 5))
    out = ot_clustering(x, k, np.random.default_rng(1), solver="emd", max_iter=10)
    sizes = np.bincount(out["labels"], minlength=k)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1


def test_capacity_rounding_resolves_split_users():
    # 5 users, 2 clusters of mass 1/2: an exact plan must split one user (2.5 users per cluster)
    cost = np.array([[0.0, 9], [0, 9], [1, 1], [9, 0], [9, 0]])
    plan = np.array([[0.2, 0], [0.2, 0], [0.1, 0.1], [0, 0.2], [0, 0.2]])
    caps = capacities(np.array([0.5, 0.5]), 5)
    assert caps.tolist() == [3, 2]
    labels = capacity_rounding(plan, cost, caps)
    assert labels.tolist() == [0, 0, 0, 1, 1]
    # whole users keep their argmax even when the split user's argmax cluster is full
    plan2 = np.array([[0.2, 0], [0.2, 0], [0.2, 0], [0, 0.2], [0.1, 0.1]])
    cost2 = np.array([[0.0, 9], [0, 9], [0, 9], [9, 0], [0, 1]])
    assert capacity_rounding(plan2, cost2, caps).tolist() == [0, 0, 0, 1, 1]


def test_ot_partitioner_balanced_on_synthetic(data):
    p = PARTITIONERS.get("ot")({"n_shards": 7, "embedding": TINY_EMB}).partition(
        data.train, data.n_users, data.n_items, 3
    )
    sizes = np.array(p.sizes(data.train))
    assert p.unit == "user" and p.uses_forget and sizes.max() - sizes.min() <= 1
    assert {"iterations", "inertia", "pretrain_s"} <= set(p.info)
    present = data.train.user_mask(data.n_users)
    assert (p.unit_shard[present] >= 0).all() and np.array_equal(p.row_shard, p.unit_shard[data.train.users])


def test_ot_cluster_mass_list():
    x = np.random.default_rng(0).normal(size=(100, 4))
    out = ot_clustering(x, 3, np.random.default_rng(0), solver="emd", cluster_mass=[2, 1, 1], max_iter=5)
    assert sorted(np.bincount(out["labels"], minlength=3).tolist()) == [25, 25, 50]


def test_emd_and_sinkhorn_agree_on_separated_clusters():
    x, truth = blobs()
    a = ot_clustering(x, 4, np.random.default_rng(5), solver="emd")["labels"]
    b = ot_clustering(x, 4, np.random.default_rng(5), solver="sinkhorn", reg=0.05)["labels"]
    assert same_partition(a, b) and same_partition(a, truth)


def test_kmeans_finds_unbalanced_blobs_and_is_seeded():
    x, truth = blobs()
    keep = np.concatenate([np.arange(0, 40), np.arange(40, 50), np.arange(80, 160)])  # sizes 40, 10, 40, 40
    xt = torch.as_tensor(x[keep])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = lloyd_kmeans(xt, 4, g1), lloyd_kmeans(xt, 4, g2)
    assert torch.equal(a["labels"], b["labels"]) and same_partition(a["labels"].numpy(), truth[keep])
    assert sorted(np.bincount(a["labels"].numpy()).tolist()) == [10, 40, 40, 40]


def test_bad_configs_refused(data):
    with pytest.raises(ConfigError, match="solver"):
        PARTITIONERS.get("ot")({"solver": "exact"})
    with pytest.raises(ConfigError, match="cluster_mass"):
        PARTITIONERS.get("ot")({"n_shards": 3, "cluster_mass": [1, 2]})
    with pytest.raises(ConfigError, match="aggregator"):
        METHODS.get("ultrare")({**spec(), "aggregator": {"name": "attention"}})
    with pytest.raises(ConfigError, match="per_group"):
        METHODS.get("ultrare")(
            {**spec(agg={"per_group": True}), "partitioner": {"name": "random", "unit": "interaction", "n_shards": 3}}
        )


# -- sub-models -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bce", "mse"])
def test_submodels_deterministic_and_early_stopped(data, name):
    ts = TrainSet(data.n_users, data.n_items, data.train, data.valid)
    cfg = {"dim": 8, "epochs": 4, "patience": 2, "lr": 0.01, "batch_size": 256, "num_neg": 2}
    a, b = SUBMODELS.get(name)(data.n_users, data.n_items, cfg), SUBMODELS.get(name)(data.n_users, data.n_items, cfg)
    info = a.fit(ts, 7)
    b.fit(ts, 7)
    assert 1 <= info.best_epoch <= info.epochs <= 4
    curve = dict(info.valid_curve)  # every evaluation: the best one is the kept epoch
    assert list(curve) == list(range(1, info.epochs + 1)) and max(curve.values()) == info.valid
    assert curve[info.best_epoch] == info.valid
    assert info.stopped_early == (info.epochs < 4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.score(torch.arange(5)).shape == (5, data.n_items)


def test_mse_targets_scaled_over_the_shard(data):
    ts = TrainSet(data.n_users, data.n_items, data.train, data.valid)
    m = SUBMODELS.get("mse")(data.n_users, data.n_items, {"dim": 4})
    m.prepare(ts)
    r = torch.as_tensor(data.train.ratings)
    assert torch.allclose(m._target, (r - r.min()) / (r.max() - r.min()))
    assert m._num_neg == 0  # explicit ratings: pure regression with num_neg: auto
    ones = TrainSet(
        data.n_users,
        data.n_items,
        type(data.train)(data.train.users, data.train.items, np.ones(len(data.train))),
        data.valid,
    )
    m.prepare(ones)
    assert m._num_neg == 1 and bool((m._target == 1).all())
    users, pos, target, neg = next(m.batches(torch.Generator().manual_seed(0)))
    assert not m._sampler.is_positive(users, neg[0]).any()


# -- UltraRE end to end -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def unlearned(data):
    m = METHODS.get("ultrare")(spec())
    m.fit(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    before = [{n: t.clone() for n, t in s.state_dict().items()} for s in m.shards]
    users = [3, 17, 42]
    rows = np.flatnonzero(np.isin(data.train.users, users))
    report = m.unlearn(rows)
    return m, rows, users, report, before


def test_exact_gap_zero_after_unlearning(data, unlearned):
    m, rows, users, report, before = unlearned
    replica = m.exact_replica(minus(data, rows, users))
    assert max_gap(m, replica, data.n_users) == 0.0
    touched = set(report.shards_retrained)
    for k, shard in enumerate(m.shards):  # untouched groups are bit-identical to M0's
        if k not in touched:
            assert all(torch.equal(t, before[k][n]) for n, t in shard.state_dict().items())


def test_combiner_refitted_without_forget_set(data, unlearned):
    """Unlearning refits the combiner on the retained rows from its own seed (what it computes is
    checked independently by test_combiner_is_the_regularised_logistic_regression_optimum)."""
    m, rows, users, report, _ = unlearned
    assert report.aggregator_s.wall > 0
    kept = minus(data, rows, users)
    assert m.aggregator.trained_on == positives_hash(kept.train.users, kept.train.items)
    assert m.aggregator.trained_on != positives_hash(data.train.users, data.train.items)
    fresh = Linear(m.spec["aggregator"], data.n_users, data.n_items)
    fresh.fit(
        m.shards,
        m.partition,
        TrainSet(data.n_users, data.n_items, kept.train, data.valid),
        derive_seed(m.seed, "aggregator"),
    )
    assert torch.equal(fresh.weight, m.aggregator.weight) and torch.equal(fresh.bias, m.aggregator.bias)


class FixedScores:
    """A frozen 'shard' with a fixed score matrix."""

    def __init__(self, s):
        self.s = torch.as_tensor(s, dtype=torch.float32)

    def score(self, users):
        return self.s[users]


def newton_logistic(z, y, l2, n_total, iters=50):
    """argmin_{w, b} sum(BCE(z w + b, y)) / n_total + l2 / 2 |w|^2 by Newton's method in float64,
    independent of the combiner's torch L-BFGS. Returns (w, b, gradient at the optimum)."""
    x = np.hstack([z, np.ones((len(z), 1))])
    theta = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[-1] = 0.0  # the bias is not penalised
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-x @ theta))
        grad = x.T @ (p - y) / n_total + reg * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x / n_total + np.diag(reg)
        theta -= np.linalg.solve(hess, grad)
    p = 1.0 / (1.0 + np.exp(-x @ theta))
    return theta[:-1], theta[-1], x.T @ (p - y) / n_total + reg * theta


@pytest.mark.parametrize("per_group", [False, True])
def test_combiner_is_the_regularised_logistic_regression_optimum(per_group):
    """UltraRE's combiner against an independent fit: every user has exactly one item it never
    interacted with, so each positive's negative is known without the combiner's sampler; the
    standardised logistic regression is then solved by Newton's method in numpy, and the combiner's
    coefficients (in raw score units) and scores must match it."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    n_users, n_items, k, l2 = 41, 6, 3, 0.02
    missing = rng.integers(0, n_items, n_users)  # the one non-positive item of each user
    users = np.repeat(np.arange(n_users - 1), n_items)  # the last user has no training rows
    items = np.tile(np.arange(n_items), n_users - 1)
    keep = items != missing[users]
    users, items = users[keep], items[keep]
    label = np.zeros((n_users, n_items))
    label[users, items] = 1.0
    scores = [rng.normal(size=(n_users, n_items)) + w * label for w in (1.0, 0.3, -0.5)]
    groups = np.arange(n_users) % k
    groups[-1] = -1
    partition = SimpleNamespace(unit="user", n_shards=k, unit_shard=groups)
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    data = TrainSet(n_users, n_items, Interactions(users, items, np.ones(len(users))), empty)
    shards = [FixedScores(s) for s in scores]
    agg = Linear({"per_group": per_group, "l2": l2, "max_iter": 500}, n_users, n_items)
    agg.fit(shards, partition, data, seed=3)

    pair_u = np.concatenate([users, users])
    pair_i = np.concatenate([items, missing[users]])
    y = np.concatenate([np.ones(len(users)), np.zeros(len(users))])
    x = np.stack([s[pair_u, pair_i] for s in scores], 1).astype(np.float32).astype(np.float64)
    mu, sd = x.mean(0), x.std(0, ddof=1)
    z = (x - mu) / sd
    a_want, c_want = [], []
    for g in range(k if per_group else 1):
        rows = groups[pair_u] == g if per_group else np.ones(len(y), bool)
        w, b, grad = newton_logistic(z[rows], y[rows], l2, len(y))
        assert np.abs(grad).max() < 1e-10
        a_want.append(w / sd)
        c_want.append(b - (w / sd) @ mu)
    a_want.append(np.mean(a_want, 0))  # the row for users without a group
    c_want.append(np.mean(c_want))
    a_got, c_got = agg.coefficients()
    np.testing.assert_allclose(a_got.numpy(), np.array(a_want), rtol=0, atol=4e-4)
    np.testing.assert_allclose(c_got.numpy(), np.array(c_want), rtol=0, atol=4e-4)
    row = np.where(groups >= 0, groups, len(a_want) - 1) if per_group else np.zeros(n_users, int)
    want = sum(np.array(a_want)[row][:, j : j + 1] * scores[j] for j in range(k)) + np.array(c_want)[row][:, None]
    got = agg.score(shards, torch.arange(n_users))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-3)


def test_one_user_deletion_touches_one_group(data, unlearned):
    m = unlearned[0]
    user = int(data.train.users[0])
    rows = np.flatnonzero(data.train.users == user)
    assert m.partition.touched(rows) == [int(m.partition.unit_shard[user])]


@pytest.mark.parametrize(
    "sub,part,agg",
    [
        ("bce", {"solver": "sinkhorn"}, {"per_group": True}),
        ("mse", None, {"optimizer": "adam", "lr": 0.05, "epochs": 30}),
    ],
)
def test_exact_gap_zero_other_axes(data, sub, part, agg):
    m = METHODS.get("ultrare")(spec(sub, part, agg, k=3, seed=1))
    m.fit(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    user = int(data.train.users[5])
    rows = np.flatnonzero(data.train.users == user)
    report = m.unlearn(rows)
    assert report.shards_retrained == [int(m.partition.unit_shard[user])]
    assert max_gap(m, m.exact_replica(minus(data, rows, [user])), data.n_users) == 0.0
    extra = m.describe()
    assert len(extra["shard_epochs"]) == 3 and extra["partition_uses_forget"]
    cap = m.spec["submodel"].get("epochs")
    at_cap = [i.stop_reason == "epoch_cap" for i in m.shard_info]
    assert extra["shards_at_epoch_cap"] == sum(at_cap)
    assert all(e == cap for e, capped in zip(extra["shard_epochs"], at_cap) if capped)


def test_kmeans_partitioner_with_ultrare(data):
    m = METHODS.get("ultrare")(
        {
            **spec(k=3),
            "partitioner": {"name": "kmeans", "n_shards": 3, "embedding": TINY_EMB},
            "aggregator": {"name": "own"},
        }
    )
    m.fit(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    assert m.partition.unit == "user" and m.partition.uses_forget and "inertia" in m.partition.info


def test_state_dict_round_trip_scores_identically(data, unlearned):
    m = unlearned[0]
    kept = minus(data, unlearned[1], unlearned[2])
    loaded = METHODS.get("ultrare")(m.spec)
    loaded.load_state_dict(m.state_dict(), kept)
    assert max_gap(m, loaded, data.n_users) == 0.0
