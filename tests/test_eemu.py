"""EEMU: user_split partition, first-order MAML, adaptation on retained rows only, exactness."""

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.data.deletion import draw
from unlearn.data.interactions import Interactions
from unlearn.methods.eemu import adapt, meta
from unlearn.metrics.ranking import RankingEvaluator, cold_item_mask
from unlearn.registry import METHODS, PARTITIONERS, SUBMODELS

K = 3
TINY_TOWER = {
    "name": "twotower",
    "emb_dim": 8,
    "user_layers": [16, 8],
    "item_layers": [16, 8],
    "epochs": 2,
    "patience": 2,
}
TINY_META = {
    "name": "eemu",
    "meta_update": "batched",
    "outer": "query_support",
    "meta_epochs": 2,
    "lr": 1e-3,
    "inner_lr": 1e-3,
    "adapt_lr": 1e-3,
    "valid_users": 40,
    "score_block": 16,
}


def eemu_spec(**method):
    return {
        "method": {**TINY_META, **method},
        "submodel": TINY_TOWER,
        "partitioner": {"name": "user_split", "n_shards": K},
        "aggregator": {"name": "mean"},
        "seed": 0,
    }


def full(d):
    return TrainSet(d.n_users, d.n_items, d.train, d.valid)


@pytest.fixture
def fitted(synthetic):
    m = METHODS.get("eemu")(eemu_spec())
    m.fit(full(synthetic))
    return m


def test_user_split_puts_every_user_in_every_shard_with_disjoint_support_and_query(synthetic):
    d = synthetic
    part = PARTITIONERS.get("user_split")({"n_shards": K, "query_len": 1}).partition(d.train, d.n_users, d.n_items, 0)
    query = part.info["query"]
    counts = d.train.user_counts(d.n_users)
    for u in np.flatnonzero(counts >= K):
        rows = np.flatnonzero(d.train.users == u)
        assert set(part.row_shard[rows].tolist()) == set(range(K))
        sizes = np.bincount(part.row_shard[rows], minlength=K)
        assert sizes.max() - sizes.min() <= 1  # nearly equal chunks
        for k in range(K):
            mine = rows[part.row_shard[rows] == k]
            q, s = mine[query[mine]], mine[~query[mine]]
            assert len(q) == 1 and not set(q) & set(s) and len(q) + len(s) == len(mine)


def tiny_tower(d, seed, dtype=torch.float32):
    """A freshly initialised tiny two-tower and its (detached) parameters and buffers."""
    model = SUBMODELS.get("twotower")(d.n_users, d.n_items, TINY_TOWER)
    model.build(None)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    params, buffers = meta.split_tensors(model)
    return model, {k: v.detach().to(dtype) for k, v in params.items()}, buffers


def test_inner_step_reads_only_the_users_support_rows(synthetic):
    d = synthetic
    model, params, buffers = tiny_tower(d, 0)
    user, pos, neg = torch.tensor(5), torch.tensor([3, 7, 9]), torch.tensor([1, 2, 4])
    g = torch.func.grad(lambda p: meta.user_loss(model, p, buffers, user, pos, neg, torch.ones(3)))(params)
    assert set(g["ue_id"].abs().sum(1).nonzero().flatten().tolist()) <= {5}
    assert set(g["ie_id"].abs().sum(1).nonzero().flatten().tolist()) <= {1, 2, 3, 4, 7, 9}

    # in a batch, a user's meta-gradient does not depend on the other users of the batch
    def one(batch_users, other_pos):
        args = (
            torch.tensor(batch_users),
            torch.tensor([[3, 7], other_pos]),
            torch.tensor([[1, 2], [4, 4]]),
            torch.ones(2, 2),
            torch.tensor([[9], [8]]),
            torch.tensor([[0], [0]]),
            torch.ones(2, 1),
        )
        return torch.func.vmap(lambda *a: meta.user_meta_grad(model, params, buffers, 1e-3, "query_support", *a))(*args)

    a, b = one([5, 6], [10, 11]), one([5, 8], [12, 13])
    assert all(torch.equal(a[k][0], b[k][0]) for k in a)


def one_users_meta_grad(model, params, buffers, inner_lr, outer, user, s_pos, s_neg, q_pos, q_neg):
    """A user's first-order meta-gradient by plain autograd on copies of the weights, one user at
    a time: support gradient, one fresh-Adam step, query gradient there (+ the support gradient)."""
    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    support = meta.user_loss(model, leaf, buffers, user, s_pos, s_neg, torch.ones(len(s_pos), dtype=torch.float64))
    gs = dict(zip(leaf, torch.autograd.grad(support, list(leaf.values()), allow_unused=True)))
    gs = {k: torch.zeros_like(leaf[k]) if g is None else g for k, g in gs.items()}
    with torch.no_grad():
        moved = {k: (params[k] - inner_lr * gs[k] / (gs[k].abs() + 1e-8)).requires_grad_(True) for k in params}
    query = meta.user_loss(model, moved, buffers, user, q_pos, q_neg, torch.ones(len(q_pos), dtype=torch.float64))
    gq = dict(zip(moved, torch.autograd.grad(query, list(moved.values()), allow_unused=True)))
    gq = {k: torch.zeros_like(moved[k]) if g is None else g for k, g in gq.items()}
    return {k: gq[k] + gs[k] for k in gq} if outer == "query_support" else gq


@pytest.mark.parametrize("outer", ["query", "query_support"])
def test_batched_meta_gradient_is_the_mean_of_per_user_gradients(synthetic, outer):
    d = synthetic
    model, params, buffers = tiny_tower(d, 1, torch.float64)
    users = torch.tensor([0, 4, 9])
    sets = [([1, 2, 3], [5, 6, 7]), ([8], [9]), ([10, 11], [12, 13])]
    width = 3
    s_pos = torch.zeros(3, width, dtype=torch.long)
    s_neg = torch.zeros(3, width, dtype=torch.long)
    s_mask = torch.zeros(3, width, dtype=torch.float64)
    for j, (p, n) in enumerate(sets):
        s_pos[j, : len(p)], s_neg[j, : len(n)], s_mask[j, : len(p)] = torch.tensor(p), torch.tensor(n), 1.0
    q_pos, q_neg = torch.tensor([[20], [21], [22]]), torch.tensor([[30], [31], [32]])
    q_mask = torch.ones(3, 1, dtype=torch.float64)
    batched = meta.batched_meta_grad(
        model, params, buffers, 1e-2, outer, users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask
    )
    one_by_one = [
        one_users_meta_grad(
            model, params, buffers, 1e-2, outer, users[j], torch.tensor(p), torch.tensor(n), q_pos[j], q_neg[j]
        )
        for j, (p, n) in enumerate(sets)
    ]
    for k in params:
        mean = torch.stack([g[k] for g in one_by_one]).mean(0)
        assert torch.allclose(batched[k], mean, atol=1e-6, rtol=0), k
    # the support term is there exactly when asked for
    other = "query" if outer == "query_support" else "query_support"
    flipped = meta.batched_meta_grad(
        model, params, buffers, 1e-2, other, users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask
    )
    assert any(not torch.allclose(batched[k], flipped[k], atol=1e-6, rtol=0) for k in params)


def test_sequential_query_support_adds_the_support_gradient_at_the_batch_start(synthetic):
    """One user in the batch: the outer step's gradient is g_query(adapted) + g_support(start)."""
    d = synthetic
    seen = {}
    for outer in ("query", "query_support"):
        model, params, buffers = tiny_tower(d, 2, torch.float64)
        params = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
        opt = torch.optim.SGD(list(params.values()), lr=1e-2)
        args = (
            torch.tensor([4]),
            torch.tensor([[1, 2]]),
            torch.tensor([[5, 6]]),
            torch.ones(1, 2, dtype=torch.float64),
            torch.tensor([[9]]),
            torch.tensor([[11]]),
            torch.ones(1, 1, dtype=torch.float64),
        )
        start = {k: v.detach().clone() for k, v in params.items()}
        meta._sequential_batch(model, params, buffers, opt, outer, args)
        seen[outer] = {k: (start[k] - params[k].detach()) / 1e-2 for k in params}  # SGD: the applied gradient
    model, params, buffers = tiny_tower(d, 2, torch.float64)
    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    sup = meta.user_loss(
        model,
        leaf,
        buffers,
        torch.tensor(4),
        torch.tensor([1, 2]),
        torch.tensor([5, 6]),
        torch.ones(2, dtype=torch.float64),
    )
    gs = dict(zip(leaf, torch.autograd.grad(sup, list(leaf.values()), allow_unused=True)))
    for k, g in gs.items():
        diff = seen["query_support"][k] - seen["query"][k]
        assert torch.allclose(diff, torch.zeros_like(diff) if g is None else g, atol=1e-6), k


def test_adaptation_never_reads_a_deleted_row(synthetic, fitted):
    d, m = synthetic, fitted
    req = draw(d.train, d.n_users, d.n_items, {"unit": "interaction", "ratio": 0.3}, 0)
    user_req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 2}, 0)
    rows = np.union1d(req.rows, user_req.rows)
    m.data = m.data.without(rows)
    m._invalidate()
    ad = m.adapter()
    users = np.arange(d.n_users)
    forgotten = set(zip(d.train.users[rows].tolist(), d.train.items[rows].tolist()))
    kept = set(zip(m.data.train.users.tolist(), m.data.train.items.tolist()))
    deg = np.bincount(m.data.train.items, minlength=d.n_items)
    assert np.allclose(ad.logit, (1.0 / np.maximum(deg, 1)) / 0.01)  # degrees from retained rows
    for k in range(K):
        pos, neg, has = ad.sets(users, m.adapt_key(k))
        drawn = {(int(u), int(i)) for u, row in zip(users[has], pos[has]) for i in row}
        assert drawn <= kept and not (drawn & forgotten - kept)
        assert not has[user_req.deleted_users].any()  # a deleted user has nothing to adapt on
        negs = {(int(u), int(i)) for u, row in zip(users[has], neg[has]) for i in row}
        assert not negs & kept
    again = ad.sets(users, m.adapt_key(0))[0]
    assert np.array_equal(again, ad.sets(users, m.adapt_key(0))[0])  # seeded per (seed, shard, user)
    assert not np.array_equal(again, ad.sets(users, m.adapt_key(1))[0])


def test_model_selection_never_reads_test(synthetic, monkeypatch):
    d = synthetic
    seen = []
    real = meta.EarlyStopping
    scored = []

    def spy(data, cfg, runtime):
        seen.append(data.valid)
        stopper = real(data, cfg, runtime)
        if stopper.evaluator is not None:  # what every evaluation ranks against
            scored.append(stopper.evaluator)
        return stopper

    monkeypatch.setattr(meta, "EarlyStopping", spy)
    METHODS.get("eemu")(eemu_spec(selection="best_valid", eval_every=1, patience=1)).fit(full(d))
    key = lambda it: set((it.users * d.n_items + it.items).tolist())  # noqa: E731
    assert len(seen) == K and len(scored) == K
    for v in seen:
        assert len(v) and key(v) <= key(d.valid) and not key(v) & key(d.test)
    # with a fixed budget nothing is evaluated at all
    seen.clear(), scored.clear()
    m = METHODS.get("eemu")(eemu_spec(selection="last"))
    m.fit(full(d))
    assert len(seen) == K and not scored
    assert all(i.stop_reason == "fixed_budget" and i.epochs == TINY_META["meta_epochs"] for i in m.shard_info)


@pytest.mark.parametrize(
    "unit, update, selection",
    [
        ("user", "batched", "last"),
        ("interaction", "batched", "last"),
        ("interaction", "batched", "best_valid"),
        ("user", "sequential", "last"),
        ("interaction", "sequential", "best_valid"),
    ],
)
def test_unlearning_retrains_the_holding_shards_and_equals_the_exact_replica(synthetic, unit, update, selection):
    """With outer=query_support (the presets' default); the replica is fitted for a user deletion
    too, though the lifecycle skips it there (every shard is retrained)."""
    d = synthetic
    m = METHODS.get("eemu")(eemu_spec(meta_update=update, meta_epochs=2, selection=selection, patience=1))
    m.fit(full(d))
    before = [{k: v.clone() for k, v in sh.state_dict().items()} for sh in m.shards]
    counts = d.train.user_counts(d.n_users)
    if unit == "user":
        u = int(np.flatnonzero(counts >= K)[0])
        rows = np.flatnonzero(d.train.users == u)
    else:
        rows = np.array([7])
    cost = m.unlearn(rows)
    holding = sorted(set(m.partition.row_shard[rows].tolist()))
    assert cost.shards_retrained == holding
    assert holding == (list(range(K)) if unit == "user" else [int(m.partition.row_shard[7])])
    for k, sh in enumerate(m.shards):
        if k not in holding:
            assert all(torch.equal(sh.state_dict()[n], before[k][n]) for n in before[k])
    rep = m.exact_replica(full(d).without(rows))
    users = torch.arange(d.n_users)
    # exact_gap == 0, whatever users a caller asks for in whatever order
    assert torch.equal(rep.score(torch.flip(users, [0])), torch.flip(m.score(users), [0]))
    assert torch.equal(m.score(users[5:9]), rep.score(users[5:9]))


def test_lifecycle_record_has_exact_gap_zero_and_item_groups(tmp_path):
    from unlearn.lifecycle import run
    from unlearn.runtime import CPU

    cfg = {
        "dataset": {
            "name": "synthetic",
            "loader": "synthetic",
            "generator": {"n_users": 80, "n_items": 60, "mean_per_user": 12},
        },
        "deletion": {"unit": "interaction", "selection": "random", "count": 2},
        **eemu_spec(meta_epochs=1),
        "eval": {"ks": [10]},
        "completeness": {"mia_bootstrap": 10},
    }
    rec = run(cfg, CPU)
    assert rec["untouched_shards"] > 0 and rec["exact_gap"] == 0.0
    for stage in ("before", "after", "retrain"):
        for g in ("cold", "warm"):
            assert f"{stage}.hr@10.{g}" in rec
    assert rec["eemu.score_s"] > 0


def test_cold_warm_groups_match_brute_force():
    rng = np.random.default_rng(0)
    n_u, n_i = 30, 25
    tr = Interactions(rng.integers(0, n_u, 200), rng.integers(0, n_i, 200), np.ones(200))
    te = Interactions(rng.integers(0, n_u, 40), rng.integers(0, n_i, 40), np.ones(40))
    scores = torch.as_tensor(rng.random((n_u, n_i)), dtype=torch.float32)
    res = RankingEvaluator(n_u, n_i, tr, te, ks=(5,), batch_size=7).evaluate(lambda u: scores[u])
    cold = cold_item_mask(np.bincount(tr.items, minlength=n_i))
    assert cold.sum() == 20
    for g, mask in (("cold", cold), ("warm", ~cold)):
        hrs = []
        for u in range(n_u):
            targets = {int(i) for i in te.items[te.users == u] if mask[i]}
            if not targets:
                continue
            s = scores[u].clone()
            s[torch.as_tensor(tr.items[tr.users == u])] = -torch.inf
            top = set(torch.argsort(s, descending=True, stable=True)[:5].tolist())
            hrs.append(float(bool(top & targets)))
        assert res[f"hr@5.{g}"] == pytest.approx(np.mean(hrs))


def test_twotower_side_features_and_cached_state_round_trip(synthetic):
    from unlearn.data.features import SideFeatures

    d = synthetic
    rng = np.random.default_rng(0)
    feats = SideFeatures(
        user_cat={"age": rng.integers(1, 4, d.n_users)},
        item_cat={"year": rng.integers(0, 5, d.n_items)},
        item_multi={"genre": (rng.random((d.n_items, 4)) < 0.4).astype(np.float32)},
        item_dense={"title": rng.standard_normal((d.n_items, 6)).astype(np.float32)},
    )
    data = TrainSet(d.n_users, d.n_items, d.train, d.valid, features=feats)
    s = {
        "method": {"name": "retrain"},
        "submodel": TINY_TOWER,
        "partitioner": {"name": "none"},
        "aggregator": {"name": "none"},
        "seed": 0,
    }
    m = METHODS.get("retrain")(s)
    m.fit(data)
    assert "ie_genre" in dict(m.shards[0].named_parameters())
    loaded = METHODS.get("retrain")(s)
    loaded.load_state_dict(m.state_dict(), data)
    users = torch.arange(d.n_users)
    assert torch.equal(m.score(users), loaded.score(users))


@pytest.mark.parametrize("adapt", ["user_tower", "all"])
def test_eemu_with_side_features_meta_trains_and_adapts(synthetic, adapt):
    """Side-feature lookups (a user's category, an item's genres and title) under vmap."""
    from unlearn.data.features import SideFeatures

    d = synthetic
    rng = np.random.default_rng(0)
    feats = SideFeatures(
        user_cat={"age": rng.integers(1, 4, d.n_users)},
        item_cat={"year": rng.integers(0, 5, d.n_items)},
        item_multi={"genre": (rng.random((d.n_items, 4)) < 0.4).astype(np.float32)},
        item_dense={"title": rng.standard_normal((d.n_items, 6)).astype(np.float32)},
    )
    m = METHODS.get("eemu")(eemu_spec(meta_epochs=1, adapt=adapt, valid_users=10))
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid, features=feats))
    assert "ux_age" in dict(m.shards[0].named_buffers())
    s = m.score(torch.arange(20))
    assert s.shape == (20, d.n_items) and torch.isfinite(s).all()


def test_adaptation_off_scores_every_shard_with_its_meta_trained_weights(synthetic):
    d = synthetic
    m = METHODS.get("eemu")(eemu_spec(adapt="none", meta_epochs=1))
    m.fit(full(d))
    users = torch.arange(d.n_users)
    own = []
    for k, shard in enumerate(m.shards):
        with torch.no_grad():
            own.append(shard.score(users))
        assert torch.equal(adapt.blocked_scores(m.adapter(), shard, users, m.adapt_key(k), 16), own[-1])
    assert torch.allclose(m.score(users), torch.stack(own).mean(0), atol=1e-6)
    # the same weights adapted (user_tower) do score differently: the check can fail
    on = adapt.Adapter(
        m.data.train, d.n_users, d.n_items, {**m.cfg, "adapt": "user_tower", "adapt_lr": 1e-2}, torch.device("cpu")
    )
    assert not torch.allclose(adapt.blocked_scores(on, m.shards[0], users, m.adapt_key(0), 16), own[0])


def test_meta_training_logs_every_meta_epoch(synthetic, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="unlearn.methods.eemu.meta"):
        METHODS.get("eemu")(eemu_spec(meta_epochs=2, selection="best_valid", patience=5)).fit(full(synthetic))
    lines = [r.getMessage() for r in caplog.records if "meta-epoch" in r.getMessage()]
    assert len(lines) == 2 * K
    assert any(line.startswith("eemu shard 2, meta-epoch 2/2: valid ndcg@10 ") for line in lines)


def test_user_tower_adaptation_equals_adapting_the_embedding_tables(fitted):
    """adapt=user_tower steps the gathered embedding rows, not whole tables: the same weights."""
    m = fitted
    ad = m.adapter()
    model, users, key = m.shards[0], torch.arange(10), m.adapt_key(0)
    got = ad.score(model, users, key)
    pos, neg, has = ad.sets(users.numpy(), key)
    params, buffers = adapt.split_tensors(model)
    p = {**buffers, **{k: v.detach() for k, v in params.items()}}
    iv = model.item_vec(p)
    for j, u in enumerate(users):
        up = {k: p[k] for k in model.user_keys()}
        w = torch.full((ad.n_adapt,), float(has[j]))

        def loss(pu):
            v = model.user_vec({**p, **pu}, u)
            d = (v * iv[torch.as_tensor(pos[j])]).sum(-1) - (v * iv[torch.as_tensor(neg[j])]).sum(-1)
            return (torch.relu(1.0 - d) * w).sum() / w.sum().clamp(min=1.0)

        g = torch.func.grad(loss)(up)
        adapted = {**p, **{k: up[k] - adapt.fresh_adam_step(g[k], ad.lr) for k in up}}
        assert torch.allclose(got[j], model.user_vec(adapted, u) @ iv.T, atol=1e-5)


def test_in_batch_negatives_come_from_other_users_rows_and_never_hit_a_positive(synthetic):
    d = synthetic
    users_t, items_t = torch.as_tensor(d.train.users), torch.as_tensor(d.train.items)
    sampler = meta.NegativeSampler(users_t, items_t, d.n_items)
    batch = torch.arange(6)
    pool = torch.as_tensor(np.flatnonzero(d.train.users < 6))
    queried = batch[:, None].expand(6, 5)
    fallback = torch.full((6, 5), -1)
    neg = meta.in_batch_negatives(sampler, queried, items_t[pool], fallback, torch.Generator().manual_seed(0))
    again = meta.in_batch_negatives(sampler, queried, items_t[pool], fallback, torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)
    positives = {(int(u), int(i)) for u, i in zip(d.train.users, d.train.items)}
    for u in range(6):
        others = set(d.train.items[(d.train.users < 6) & (d.train.users != u)].tolist())
        for i in neg[u].tolist():
            assert i == -1 or (i in others and (u, i) not in positives)
    assert (neg >= 0).float().mean() > 0.9  # the fallback is the exception, not the rule
    # a batch of one user has no other user's rows: every entry takes its fallback
    alone = torch.as_tensor(np.flatnonzero(d.train.users == 0))
    solo = meta.in_batch_negatives(
        sampler, torch.zeros(4, dtype=torch.long), items_t[alone], torch.arange(4), torch.Generator().manual_seed(0)
    )
    assert torch.equal(solo, torch.arange(4))


def test_margin_loss_over_two_negatives_is_the_mean_of_each_negatives_loss(synthetic):
    model, params, buffers = tiny_tower(synthetic, 0)
    p = {**buffers, **params}
    user, pos = torch.tensor(5), torch.tensor([3, 7, 9])
    n1, n2, mask = torch.tensor([1, 2, 4]), torch.tensor([11, 12, 14]), torch.tensor([1.0, 1.0, 0.0])
    both = model.margin_loss(p, user, pos, torch.stack([n1, n2], -1), mask)
    one = (model.margin_loss(p, user, pos, n1, mask) + model.margin_loss(p, user, pos, n2, mask)) / 2
    assert torch.allclose(both, one, atol=1e-6)
