"""Sparse-gradient training of the batch-row sub-models (bpr, bce, mse): with adagrad and sgd a
step touches only the batch's rows and computes what the dense step computes; sparse_adam is
lazy Adam, deterministic, and refused where a loss reads whole tables."""
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.errors import ConfigError
from unlearn.registry import SUBMODELS

CFG = {"dim": 8, "epochs": 3, "patience": 0, "batch_size": 256}


def fitted(d, name, optimizer, sparse=None, monkeypatch=None):
    cls = SUBMODELS.get(name)
    if sparse is not None:
        monkeypatch.setattr(cls, "sparse_lookups", sparse)
    m = cls(d.n_users, d.n_items, {**CFG, "optimizer": optimizer, "lr": 0.05})
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid), 11)
    return m


@pytest.mark.parametrize("name", ["bpr", "bce", "mse"])
@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_sparse_step_computes_the_dense_step(synthetic, monkeypatch, name, optimizer):
    sparse = fitted(synthetic, name, optimizer)
    with monkeypatch.context() as mp:
        dense = fitted(synthetic, name, optimizer, sparse=False, monkeypatch=mp)
    assert not torch.equal(sparse.user_emb, torch.zeros_like(sparse.user_emb))
    for a, b in ((sparse.user_emb, dense.user_emb), (sparse.item_emb, dense.item_emb)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()


def test_sparse_gradients_reach_only_the_batch_rows(synthetic):
    d = synthetic
    m = SUBMODELS.get("bpr")(d.n_users, d.n_items, {**CFG, "optimizer": "adagrad"})
    m.begin_fit(TrainSet(d.n_users, d.n_items, d.train, d.valid), 0)
    m.train()
    batch = next(iter(m.batches(m._gen)))
    m.loss(batch).backward()
    assert m.user_emb.grad.is_sparse and m.item_emb.grad.is_sparse
    rows = set(m.user_emb.grad.coalesce().indices()[0].tolist())
    assert rows == set(batch[0].tolist())


def test_sparse_adam_is_deterministic_and_refused_for_whole_table_losses(synthetic):
    a, b = fitted(synthetic, "bpr", "sparse_adam"), fitted(synthetic, "bpr", "sparse_adam")
    assert torch.equal(a.user_emb, b.user_emb) and torch.equal(a.item_emb, b.item_emb)
    with pytest.raises(ConfigError, match="cannot use optimizer=sparse_adam"):
        SUBMODELS.get("wmf")(10, 10, {"optimizer": "sparse_adam"})
