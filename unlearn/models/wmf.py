"""Weighted matrix factorisation with the whole-data (non-sampling) loss, as RecEraser's WMF
(the efficient form of ENMF, Chen et al. 2020).

Every observed (u, i) has weight 1 and target 1; every missing entry weight `c0` and target 0:

    L = sum_{u in B} sum_{i} w_ui (x_ui - y_ui)^2
      = sum_{observed (u,i), u in B} [(1 - c0) x_ui^2 - 2 x_ui]
        + c0 * sum_{d,d'} (P^T P)_{dd'} (Q^T Q)_{dd'}  + const

over a mini-batch B of users, with P the batch's user vectors (after dropout) and Q the item
vectors, so the all-pairs term costs two d x d Gram matrices instead of |B| x n_items products.
Plus `reg/2 * (||P||^2 + ||Q||^2)` (the released RecEraser_WMF sets this weight to 0; the
sub-model's README preset is reg 0.01).

`gram_items`: `all` (default; every missing entry of the batch users, as the loss says) or
`shard` (only items present in the shard, as the released code's `C_I` restriction). Either way
only the shard's own rows are read. No negative sampling, so the only randomness is
initialisation, the user shuffle and the dropout mask, all from the per-fit generator.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..registry import SUBMODELS
from ..runtime import CPU
from ..training import UserRows, wmf_whole_data_loss
from .base import MatrixFactorization


@SUBMODELS.register("wmf")
class WMF(MatrixFactorization):
    loss_family = "wmf"
    defaults = {
        **MatrixFactorization.defaults,
        # RecEraser README, ML-1M: Adagrad lr 0.05, reg 0.01, batch 256 (users), weight c0 0.2, keep 0.7
        "dim": 64,
        "optimizer": "adagrad",
        "lr": 0.05,
        "adagrad_init": 1e-8,  # the released code's initial_accumulator_value
        "reg": 0.01,
        "batch_size": 256,
        "c0": 0.2,
        "dropout": 0.3,
        "init_std": 0.01,
        "gram_items": "all",
    }

    def __init__(self, n_users, n_items, cfg=None, runtime=CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        if self.cfg["gram_items"] not in ("all", "shard"):
            raise ConfigError(f"Unknown submodel.gram_items '{self.cfg['gram_items']}'. Valid: all, shard.")
        if not 0.0 <= float(self.cfg["c0"]) <= 1.0:
            raise ConfigError(f"submodel.c0 must lie in [0, 1], got {self.cfg['c0']}.")
        if not 0.0 <= float(self.cfg["dropout"]) < 1.0:
            raise ConfigError(f"submodel.dropout must lie in [0, 1), got {self.cfg['dropout']}.")

    def prepare(self, data: TrainSet):
        self._rows = UserRows(data.train.users, data.train.items, self.n_users, self.n_items, self.device)
        if self.cfg["gram_items"] == "shard":
            self._gram_items = torch.as_tensor(np.flatnonzero(data.train.item_counts(self.n_items)), device=self.device)
        else:
            self._gram_items = None

    def batches(self, gen):
        return self._rows.epoch(gen, int(self.cfg["batch_size"]))

    def loss(self, batch):
        users, local, items = batch
        p = self.user_vectors(users)
        q = self.item_emb if self._gram_items is None else self.item_emb[self._gram_items]
        x_pos = (p[local] * self.item_emb[items]).sum(1)
        loss = wmf_whole_data_loss(p, q, x_pos, float(self.cfg["c0"]))
        reg = float(self.cfg["reg"])
        if reg:
            loss = loss + 0.5 * reg * (self.user_emb[users].pow(2).sum() + q.pow(2).sum())
        return loss

    def finish(self):
        super().finish()
        self._rows = self._gram_items = None
