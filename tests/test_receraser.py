"""RecEraser: balanced partitions, WMF / LightGCN sub-models, the attention aggregator, exactness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unlearn  # noqa: F401  (fills the registries)
from unlearn.aggregate.attention import Attention
from unlearn.data.interactions import TrainSet
from unlearn.errors import ConfigError
from unlearn.models.lightgcn import normalized_adjacency
from unlearn.partition.balanced import greedy_capacity_assign, greedy_capacity_assign_reference
from unlearn.registry import AGGREGATORS, METHODS, PARTITIONERS, SUBMODELS
from unlearn.seeding import derive_seed
from unlearn.training import wmf_whole_data_loss

from .helpers import small_synthetic

EMB = {"name": "wmf", "epochs": 3, "dim": 8}


@pytest.fixture(scope="module")
def data():
    return small_synthetic()


def fitdata(ds):
    return TrainSet(ds.n_users, ds.n_items, ds.train, ds.valid)


def partition(ds, name, seed=0, **cfg):
    p = PARTITIONERS.get(name)({"n_shards": 4, "embedding": EMB, **cfg})
    return p, p.partition(ds.train, ds.n_users, ds.n_items, seed)


# -- the greedy walk ------------------------------------------------------------------
def test_vectorised_greedy_equals_the_released_walk():
    rng = np.random.default_rng(0)
    for trial in range(150):
        n, k = int(rng.integers(4, 120)), int(rng.integers(2, 9))
        if k > n:
            continue
        cap = math.ceil(float(rng.choice([1.0, 1.2, 2.0])) * n / k)
        if trial % 3 == 0:  # many ties
            s = rng.integers(0, 4, (n, k)).astype(np.float64)
        else:  # skewed: some anchors attract everyone
            s = rng.random((n, k)) * np.logspace(0, 2, k)[rng.permutation(k)]
        got, _ = greedy_capacity_assign(torch.as_tensor(s), cap)
        np.testing.assert_array_equal(got.numpy(), greedy_capacity_assign_reference(s, cap))


# -- partitions -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ubp", "ibp", "inbp"])
def test_shard_sizes_never_exceed_capacity(data, name):
    p, part = partition(data, name)
    sizes = part.sizes(data.train)
    n = p.n_units(data.train, data.n_users, data.n_items)
    assert part.info["capacity"] == math.ceil(1.2 * n / 4)
    assert max(sizes) <= part.info["capacity"]
    assert sum(sizes) == n  # every unit placed exactly once
    assert part.row_shard.min() >= 0 and part.uses_forget
    if name == "ubp":
        present = np.bincount(data.train.users, minlength=data.n_users) > 0
        assert (part.unit_shard[present] >= 0).all() and (part.unit_shard[~present] == -1).all()
        np.testing.assert_array_equal(part.row_shard, part.unit_shard[data.train.users])
    if name == "ibp":
        np.testing.assert_array_equal(part.row_shard, part.unit_shard[data.train.items])


@pytest.mark.parametrize("name", ["ubp", "inbp"])
def test_same_seed_same_partition(data, name):
    _, a = partition(data, name, seed=3)
    _, b = partition(data, name, seed=3)
    _, c = partition(data, name, seed=4)
    np.testing.assert_array_equal(a.row_shard, b.row_shard)
    assert not np.array_equal(a.row_shard, c.row_shard)


def test_released_update_collapses_anchors_to_the_scalar_mean():
    x = torch.arange(24, dtype=torch.float64).view(6, 4) ** 1.5
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 1])  # unit 1 twice (interaction partitions repeat users)
    assign = torch.tensor([0, 0, 1, 1, 1, 2, 1])
    old = torch.full((4, 4), -7.0, dtype=torch.float64)  # anchor 3 wins nobody
    released = PARTITIONERS.get("ubp")({"centroid_update": "released"})._update(x, ids, assign, old)
    mean = PARTITIONERS.get("ubp")({"centroid_update": "mean"})._update(x, ids, assign, old)
    for k in range(3):
        members = x[ids[assign == k]]
        assert torch.allclose(released[k], torch.full((4,), members.mean().item(), dtype=torch.float64))
        assert torch.allclose(mean[k], members.mean(0))
        assert (released[k] == released[k][0]).all()  # a constant vector
    assert (released[3] == -7.0).all() and (mean[3] == -7.0).all()


def test_bad_partition_config_is_refused():
    with pytest.raises(ConfigError, match="centroid_update"):
        PARTITIONERS.get("ubp")({"centroid_update": "median"})


# -- sub-models -----------------------------------------------------------------------
def test_wmf_gram_loss_equals_the_whole_data_loss():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(5, 7, generator=g) < 0.3).double()
    c0 = 0.2
    x = p @ q.T
    w = torch.where(y > 0, torch.ones_like(y), torch.full_like(y, c0))
    brute = (w * (x - y) ** 2).sum() - y.sum()  # minus the constant sum_obs 1
    u, i = y.nonzero(as_tuple=True)
    fast = wmf_whole_data_loss(p, q, x[u, i], c0)
    assert torch.allclose(brute, fast)


def test_lightgcn_adjacency_uses_shard_degrees_only():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])
    adj = normalized_adjacency(users, items, 3, 2, torch.device("cpu")).to_dense()
    # user 0 (deg 2) - item 1 (deg 2): 1/sqrt(4); user 1 (deg 1) - item 1: 1/sqrt(2); user 2 absent
    assert adj[0, 3 + 1].item() == pytest.approx(0.5)
    assert adj[1, 3 + 1].item() == pytest.approx(1 / math.sqrt(2))
    assert (adj[2] == 0).all() and torch.equal(adj, adj.T)


@pytest.mark.parametrize("name", ["wmf", "lightgcn"])
def test_submodel_fit_is_deterministic(data, name):
    ts = TrainSet(data.n_users, data.n_items, data.train, data.valid)
    a = SUBMODELS.get(name)(data.n_users, data.n_items, {"epochs": 3, "dim": 8})
    b = SUBMODELS.get(name)(data.n_users, data.n_items, {"epochs": 3, "dim": 8})
    a.fit(ts, 5)
    b.fit(ts, 5)
    u = torch.arange(data.n_users)
    assert torch.equal(a.score(u), b.score(u))
    ue, ie = a.embeddings()
    assert torch.equal(a.score(u), ue @ ie.T)  # LightGCN: the propagated embeddings


# -- the method -----------------------------------------------------------------------
def spec(sub, part="ubp", agg="attention", **agg_cfg):
    return {
        "method": {"name": "receraser"},
        "submodel": {"name": sub, "epochs": 4, "patience": 2, "eval_every": 1, "dim": 8},
        "partitioner": {"name": part, "n_shards": 4, "embedding": EMB},
        "aggregator": {"name": agg, "epochs": 3, "patience": 2, **agg_cfg},
        "seed": 0,
    }


def forget_users(ds, users):
    return np.flatnonzero(np.isin(ds.train.users, users))


@pytest.mark.parametrize(
    "sub,schedule,item_batch",
    [
        ("bpr", "entity", None),
        ("wmf", "entity", None),
        ("lightgcn", "entity", None),
        ("bpr", "entity", 16),
        ("wmf", "entity", 16),
        ("lightgcn", "entity", 16),
        ("bpr", "batch", None),
        ("wmf", "batch", None),
    ],
)
def test_exact_gap_is_zero_after_unlearning(data, sub, schedule, item_batch):
    method = METHODS.get("receraser")(spec(sub, schedule=schedule, entity_batch=64, item_batch=item_batch))
    method.fit(fitdata(data))
    rows = forget_users(data, [3, 17, 42])
    report = method.unlearn(rows)
    assert report.shards_retrained == method.partition.touched(rows)
    replica = method.exact_replica(fitdata(data).without(rows))
    users = torch.arange(data.n_users)
    assert (method.score(users) - replica.score(users)).abs().max().item() == 0.0


@pytest.mark.parametrize("sub", ["bpr", "wmf"])
def test_entity_schedule_is_deterministic_and_steps_over_user_batches(data, sub):
    """Same seed and data, same bits; a batch smaller than the users makes several steps an epoch."""
    method = METHODS.get("receraser")(spec(sub, agg="mean"))
    method.fit(fitdata(data))
    nets = []
    for _ in range(2):
        agg = AGGREGATORS.get("attention")(
            {"epochs": 2, "patience": 0, "entity_batch": 50, "item_batch": None}, data.n_users, data.n_items
        )
        steps = []
        agg._entity_steps = wrap_counting(agg._entity_steps, steps)
        agg.fit(method.shards, method.partition, method.data, 11)
        nets.append(agg.net.state_dict())
        n_users = len(np.unique(method.data.train.users))
        assert len(steps) == 2 * math.ceil(n_users / 50)
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])


@pytest.mark.parametrize("sub", ["bpr", "wmf"])
def test_item_blocks_are_deterministic_and_step_over_user_by_item_blocks(data, sub):
    """With item_batch, an epoch steps over every (user batch, item block) pair that holds a row
    (BPR) or over all of them (WMF, whose whole-data term covers empty blocks too)."""
    method = METHODS.get("receraser")(spec(sub, agg="mean"))
    method.fit(fitdata(data))
    nets, counts = [], []
    for _ in range(2):
        agg = AGGREGATORS.get("attention")(
            {"epochs": 2, "patience": 0, "entity_batch": 50, "item_batch": 7}, data.n_users, data.n_items
        )
        steps = []
        agg._entity_steps = wrap_counting(agg._entity_steps, steps)
        agg.fit(method.shards, method.partition, method.data, 11)
        nets.append(agg.net.state_dict())
        counts.append(len(steps))
    n_users = len(np.unique(method.data.train.users))
    most = 2 * math.ceil(n_users / 50) * math.ceil(data.n_items / 7)
    assert counts[0] == counts[1] and (counts[0] == most if sub == "wmf" else 0 < counts[0] <= most)
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])


def test_wmf_item_blocks_sum_to_the_whole_data_loss(data):
    """The blocks of one epoch partition the user x item matrix: their WMF losses add up to the
    whole-data loss of every user against every item."""
    method = METHODS.get("receraser")(spec("wmf", agg="mean"))
    method.fit(fitdata(data))
    losses = {}
    for item_batch in (None, 9):
        agg = AGGREGATORS.get("attention")({}, data.n_users, data.n_items)
        agg.bind(method.shards, method.partition)
        agg.net.reset_parameters(torch.Generator().manual_seed(0), "glorot")
        from unlearn.training import NegativeSampler, UserRows

        tr = method.data.train
        rows = UserRows(tr.users, tr.items, data.n_users, data.n_items, torch.device("cpu"))
        sampler = NegativeSampler(torch.as_tensor(tr.users), torch.as_tensor(tr.items), data.n_items)
        epoch = agg._entity_steps(rows, sampler, "wmf", 10_000, item_batch, {"p_drop": 0.0, "reg": 0.0, "c0": 0.2})
        with torch.no_grad():
            losses[item_batch] = sum(float(loss) for loss in epoch(torch.Generator().manual_seed(1)))
    assert losses[9] == pytest.approx(losses[None], rel=1e-5)


@pytest.mark.parametrize("schedule,halvings", [("entity", 2), ("batch", 0)])
def test_plateaus_halve_the_learning_rate_before_the_fit_stops(data, schedule, halvings):
    """lr_halvings=auto: on the entity schedule each of two plateaus sends the fit back to its best
    state at half the step; the released batch schedule stops at its first plateau."""
    s = spec("bpr", agg="mean")
    s["submodel"]["epochs"] = 200  # the shards' cap also caps the aggregator's; early stopping ends both
    method = METHODS.get("receraser")(s)
    method.fit(fitdata(data))
    agg = AGGREGATORS.get("attention")(
        {"epochs": 200, "patience": 1, "lr": 0.01, "schedule": schedule}, data.n_users, data.n_items
    )
    info = agg.fit(method.shards, method.partition, method.data, 3)
    assert info["stop_reason"] == "patience" and info["settings"]["lr_halvings"] == halvings
    assert info["lr_final"] == pytest.approx(0.01 / 2**halvings)


def test_the_aggregator_follows_the_shards_epoch_cap(data):
    """submodel.epochs=4 caps the attention aggregator's 400 epochs at 4 too (a quick run stays quick)."""
    method = METHODS.get("receraser")(spec("bpr", agg="mean"))
    method.fit(fitdata(data))
    agg = AGGREGATORS.get("attention")({"epochs": 400, "patience": 1000, "lr_halvings": 0}, data.n_users, data.n_items)
    info = agg.fit(method.shards, method.partition, method.data, 3)
    assert info["epoch_cap"] == 4 and info["epochs"] == 4 and info["stop_reason"] == "epoch_cap"


@pytest.mark.parametrize(
    "sub,schedule,expected",
    [("bpr", "entity", ("adam", 0.005)), ("wmf", "entity", ("adam", 0.01)), ("bpr", "batch", ("adagrad", 3e-4))],
)
def test_auto_optimizer_is_the_schedules_not_a_tuned_shard_lr(data, sub, schedule, expected):
    """optimizer/lr auto: the entity schedule's own Adam (ENTITY_OPTIMIZER) whatever lr the shards'
    preset tuned; the released batch schedule shares the sub-model's."""
    s = spec(sub, agg="mean")
    s["submodel"].update({"optimizer": "adagrad", "lr": 3e-4, "epochs": 1})
    method = METHODS.get("receraser")(s)
    method.fit(fitdata(data))
    agg = AGGREGATORS.get("attention")({"epochs": 1, "schedule": schedule}, data.n_users, data.n_items)
    info = agg.fit(method.shards, method.partition, method.data, 3)
    assert (info["settings"]["optimizer"], info["settings"]["lr"]) == pytest.approx(expected)


def wrap_counting(make_steps, seen: list):
    def wrapped(*args, **kw):
        epoch = make_steps(*args, **kw)

        def counted(gen):
            for loss in epoch(gen):
                seen.append(float(loss.detach()))
                yield loss

        return counted

    return wrapped


@pytest.fixture(scope="module")
def fitted_bpr(data):
    method = METHODS.get("receraser")(spec("bpr"))
    method.fit(fitdata(data))
    return method


def unfreeze(shards, monkeypatch):
    """Shards whose parameters require grad and already hold a gradient, and whose `embeddings()`
    stay on the autograd graph (a researcher's own sub-model need not detach them): the method
    freezes its shards and the shipped sub-models detach, so only such shards show whether the
    aggregator itself stops gradients."""
    g = torch.Generator().manual_seed(0)
    for m in shards:
        m.requires_grad_(True)
        for p in m.parameters():
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        monkeypatch.setattr(m, "embeddings", lambda m=m: (m.user_emb * 1.0, m.item_emb * 1.0))
        assert all(e.requires_grad for e in m.embeddings())


def test_aggregator_gradients_never_reach_unfrozen_shards(data, fitted_bpr, monkeypatch):
    method = fitted_bpr
    unfreeze(method.shards, monkeypatch)
    try:
        params = [p for m in method.shards for p in m.parameters()]
        assert params and all(p.requires_grad for p in params)
        values, grads = [p.detach().clone() for p in params], [p.grad.clone() for p in params]
        agg = Attention({"epochs": 2, "patience": 0}, data.n_users, data.n_items)
        agg.fit(method.shards, method.partition, method.data, derive_seed(0, "aggregator"))
        # one more backward through the aggregator's vectors: still nothing reaches a shard
        loss = agg.user_vectors(torch.arange(10)).sum() + agg.item_vectors(torch.arange(10)).sum()
        loss.backward()
        assert agg.net.trans_w.grad is not None  # the aggregator itself did learn
        assert all(p.requires_grad for p in params)
        assert all(torch.equal(p, v) for p, v in zip(params, values))
        assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))
    finally:
        for m in method.shards:
            m.requires_grad_(False)
            for p in m.parameters():
                p.grad = None


@pytest.mark.parametrize("change", ["value", "new_grad", "grad_in_place"])
def test_aggregator_guard_fires_when_a_shard_changes_during_fit(data, fitted_bpr, monkeypatch, change):
    """The check at the end of Attention.fit: make a shard parameter (or its gradient) change while
    the aggregator fits, and the fit must refuse."""
    method = fitted_bpr
    unfreeze(method.shards, monkeypatch)
    p = next(method.shards[1].parameters())
    original_bind = Attention.bind

    def tampering_bind(self, shards, partition):
        original_bind(self, shards, partition)
        with torch.no_grad():
            if change == "value":
                p.add_(1.0)
            elif change == "new_grad":
                p.grad = p.grad.clone()
            else:
                p.grad.mul_(2.0)

    monkeypatch.setattr(Attention, "bind", tampering_bind)
    agg = Attention({"epochs": 1, "patience": 0}, data.n_users, data.n_items)
    try:
        with pytest.raises(RuntimeError, match="a shard's parameters or gradients changed"):
            agg.fit(method.shards, method.partition, method.data, derive_seed(0, "aggregator"))
    finally:
        with torch.no_grad():
            if change == "value":
                p.sub_(1.0)
        for m in method.shards:
            m.requires_grad_(False)
            for q in m.parameters():
                q.grad = None


def test_user_deletion_under_ubp_touches_one_shard(data):
    method = METHODS.get("receraser")(spec("wmf"))
    method.fit(fitdata(data))
    user = 5
    rows = forget_users(data, [user])
    before = {k: [t.clone() for t in m.state_dict().values()] for k, m in enumerate(method.shards)}
    report = method.unlearn(rows)
    assert report.shards_retrained == [int(method.partition.unit_shard[user])]
    for k, m in enumerate(method.shards):  # untouched shards keep their very tensors
        if k not in report.shards_retrained:
            assert all(torch.equal(a, b) for a, b in zip(before[k], m.state_dict().values()))


def test_interaction_deletion_touches_the_shards_that_hold_it(data):
    method = METHODS.get("receraser")(spec("bpr", part="inbp", agg="mean"))
    method.fit(fitdata(data))
    rows = np.array([0, 7, 31])
    report = method.unlearn(rows)
    assert report.shards_retrained == sorted(set(method.partition.row_shard[rows].tolist()))
    assert report.aggregator_s.wall == 0.0  # mean has nothing to refit


@pytest.mark.parametrize("axis,name", [("aggregator", "own"), ("submodel", "bce"), ("partitioner", "none")])
def test_incompatible_axes_are_refused_before_training(axis, name):
    s = spec("bpr")
    s[axis] = {"name": name}
    with pytest.raises(ConfigError, match=f"cannot use {axis}={name}"):
        METHODS.get("receraser")(s)


def test_state_dict_round_trip_restores_scores(data):
    method = METHODS.get("receraser")(spec("lightgcn"))
    fd = fitdata(data)
    method.fit(fd)
    copy = METHODS.get("receraser")(method.spec)
    copy.load_state_dict(method.state_dict(), fd)
    users = torch.arange(data.n_users)
    assert torch.equal(method.score(users), copy.score(users))
