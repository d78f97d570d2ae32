import numpy as np
import torch

from unlearn.data import load_dataset
from unlearn.data.deletion import draw
from unlearn.metrics.heldout_cells import HeldoutCells, jaccard, sample_negative_cells
from unlearn.runtime import CPU


def test_cells_split_holds_out_a_fraction_of_all_cells():
    ds = load_dataset(
        {
            "name": "synthetic",
            "loader": "synthetic",
            "generator": {"n_users": 200, "n_items": 100},
            "split": {"name": "cells", "test": 0.05, "valid": 0.0, "seed": 0},
        }
    )
    total = len(ds.train) + len(ds.test)
    assert len(ds.valid) == 0 and abs(len(ds.test) / total - 0.05) < 0.01


def test_negative_cells_are_never_observed_and_seeded(synthetic):
    d = synthetic
    u, i = sample_negative_cells(d.train, d.n_users, d.n_items, 500, 0)
    observed = set(zip(d.train.users.tolist(), d.train.items.tolist()))
    assert len(set(zip(u.tolist(), i.tolist()))) == 500 and not observed & set(zip(u.tolist(), i.tolist()))
    u2, i2 = sample_negative_cells(d.train, d.n_users, d.n_items, 500, 0)
    assert np.array_equal(u, u2) and np.array_equal(i, i2)


def test_jaccard():
    a = torch.tensor([[1, 2], [0, 2]])
    b = torch.tensor([[2, 1], [1, 2]])
    assert jaccard(a, b, 3) == (1.0 + 1 / 3) / 2


def test_probe_on_an_oracle_like_model(synthetic):
    d = synthetic
    req = draw(d.train, d.n_users, d.n_items, {"unit": "interaction", "ratio": 0.1}, 0)
    probe = HeldoutCells(d, req, CPU)
    truth = torch.zeros(d.n_users, d.n_items)
    truth[torch.as_tensor(d.test.users), torch.as_tensor(d.test.items)] = 1.0
    perfect = lambda u: truth[u]
    m = probe.measure("retrain", perfect, None)
    assert m["cells_auc"] == 1.0 and m["cells_mse"] == 0.0 and m["removed_mse"] == 1.0
    probe.measure("after", perfect, None)
    assert probe.finish()["similar_jaccard.after"] == 1.0
