"""The switches that reproduce the released code (docs/protocols.md): UltraRE's own_cross
combination, the WMF attention transfer init / L2, Unlearn-ALS's confidence without +1, and the
released held-out cells and factor-similarity quantities."""

import numpy as np
import pytest
import torch

import unlearn  # noqa: F401
from unlearn.data import TrainSet
from unlearn.registry import AGGREGATORS, METHODS, SUBMODELS


class _FakeShard:
    def __init__(self, u, i):
        self.u, self.i = u, i

    def embeddings(self):
        return self.u, self.i


class _FakePartition:
    def __init__(self, unit_shard):
        self.unit_shard = np.asarray(unit_shard)


def test_own_cross_is_the_own_group_vector_against_every_groups_items():
    g = torch.Generator().manual_seed(0)
    shards = [_FakeShard(torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)) for _ in range(3)]
    agg = AGGREGATORS.get("own_cross")()
    agg.bind(shards, _FakePartition([0, 1, 2, 1, -1]))
    users = torch.arange(5)
    got = agg.score(shards, users)
    for u, k in enumerate([0, 1, 2, 1]):
        want = sum(shards[k].u[u] @ s.i.T for s in shards) / 3  # mean over groups of own vector . their items
        assert torch.allclose(got[u], want, atol=1e-6)
    groupless = torch.stack([s.u[4] for s in shards]).mean(0) @ torch.stack([s.i for s in shards]).mean(0).T
    assert torch.allclose(got[4], groupless, atol=1e-6)


def test_ultrare_with_own_cross_fits_and_unlearns_one_group(synthetic, fast_bpr):
    d = synthetic
    spec = {
        "method": {"name": "ultrare"},
        "submodel": fast_bpr,
        "aggregator": {"name": "own_cross"},
        "partitioner": {"name": "random", "n_shards": 3, "unit": "user"},
        "seed": 0,
    }
    data = TrainSet(d.n_users, d.n_items, d.train, d.valid)
    m = METHODS.get("ultrare")(spec)
    m.fit(data)
    rows = np.flatnonzero(d.train.users == d.train.users[0])
    before = m.score(torch.arange(d.n_users))
    cost = m.unlearn(rows)
    assert cost.shards_retrained == [int(m.partition.unit_shard[d.train.users[0]])]
    assert m.score(torch.arange(d.n_users)).shape == before.shape == (d.n_users, d.n_items)


@pytest.mark.parametrize("family,std,reg", [("wmf", 0.01, 0.0), ("bpr", None, 1e-5)])
def test_attention_auto_follows_the_released_file_of_the_loss_family(synthetic, family, std, reg, monkeypatch):
    d = synthetic
    sub = {"name": family, "dim": 8, "epochs": 2, "patience": 0, "batch_size": 64}
    spec = {
        "method": {"name": "receraser"},
        "submodel": sub,
        "seed": 0,
        "aggregator": {"name": "attention", "epochs": 1, "patience": 0},
        "partitioner": {"name": "random", "n_shards": 2, "unit": "user"},
    }
    seen = {}
    from unlearn.aggregate import attention

    original = attention.AttentionNet.reset_parameters

    def spy(self, gen, init):
        seen["init"] = init
        original(self, gen, init)
        seen["std"] = float(self.trans_w.detach().std())

    monkeypatch.setattr(attention.AttentionNet, "reset_parameters", spy)
    m = METHODS.get("receraser")(spec)
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    assert seen["init"] == ("normal" if family == "wmf" else "glorot")
    if std is not None:
        assert abs(seen["std"] - std) < 0.002
    agg = m.aggregator
    assert agg.cfg["reg"] == "auto"


def test_als_without_plus_one_uses_the_confidence_itself():
    als = SUBMODELS.get("als")
    u = torch.tensor([0, 0, 1, 2])
    i = torch.tensor([0, 1, 1, 2])
    raw = torch.ones(4, dtype=torch.float64)
    cfg = {"confidence": "bm25", "alpha": 5.0, "bm25_b": 0.9}
    with_one = als(3, 3, {**cfg, "plus_one": True}).confidence_weights(u, i, raw)
    without = als(3, 3, {**cfg, "plus_one": False}).confidence_weights(u, i, raw)
    assert torch.allclose(without, with_one - 1.0)  # w = c - 1: c = 5 bm25 instead of 1 + 5 bm25


def test_grid_heldout_cells_draw_the_held_out_fraction_of_every_negative(synthetic):
    from unlearn.metrics.heldout_cells import HeldoutCells, HeldoutCellsGrid
    from unlearn.runtime import CPU

    d = synthetic

    class Req:
        rows = np.arange(3)

    balanced, grid = HeldoutCells(d, Req, CPU), HeldoutCellsGrid(d, Req, CPU)
    n_pos = len(d.test)
    assert (balanced.label == 0).sum() == n_pos
    n_obs = len(np.unique(np.concatenate([x.users * d.n_items + x.items for x in (d.train, d.valid, d.test)])))
    frac = n_pos / (len(d.train) + len(d.valid) + len(d.test))
    assert abs((grid.label == 0).sum() - frac * (d.n_users * d.n_items - n_obs)) <= 1


def test_released_similarity_compares_factor_neighbours_with_the_undeleted_model():
    from unlearn.metrics.heldout_cells import factor_neighbours, jaccard

    g = torch.Generator().manual_seed(1)
    f = torch.randn(30, 4, generator=g)
    nb = factor_neighbours(f, 5)
    assert nb.shape == (30, 5) and not (nb == torch.arange(30)[:, None]).any()  # the item itself left out
    assert jaccard(nb, factor_neighbours(f * 3.0, 5), 30) == 1.0  # cosine: scale-free
    assert jaccard(nb, factor_neighbours(torch.randn(30, 4, generator=g), 5), 30) < 1.0
