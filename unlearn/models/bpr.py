"""Matrix factorisation trained with the BPR pairwise loss (Rendle et al., 2009)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import SUBMODELS
from .base import MatrixFactorization


@SUBMODELS.register("bpr")
class BPRMF(MatrixFactorization):
    loss_family = "bpr"
    defaults = {
        **MatrixFactorization.defaults,
        "lr": 0.005,
        "reg": 1e-4,
        "dropout": 0.0,  # on the user vector, as RecEraser's "keep 0.7"
        "grad": "analytic",  # the closed-form step (models.analytic); autograd: loss().backward()
    }

    def loss(self, batch):
        users, pos, neg = batch
        u = self.user_vectors(users)
        i, j = self.item_emb[pos], self.item_emb[neg]
        diff = (u * i).sum(1) - (u * j).sum(1)
        reg = float(self.cfg["reg"]) * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2 * len(users))
        return -F.logsigmoid(diff).mean() + reg

    def score_slots(self, batch):
        users, pos, neg = batch
        return users, torch.stack([pos, neg], 1)

    @property
    def compiled_epoch(self) -> str | None:
        """ "bpr" (CPU Adagrad fits, RecEraser's presets, run whole epochs compiled) where the
        batches and dL/ds are this class's own; a subclass with another loss gets None."""
        cls = type(self)
        own = all(getattr(cls, f) is getattr(BPRMF, f) for f in ("batches", "score_slots", "score_grad"))
        return "bpr" if own else None

    def score_grad(self, batch, s):
        """d/ds of -mean log sigmoid(s_pos - s_neg)."""
        g = torch.sigmoid(s[:, 1] - s[:, 0]).div_(-len(s))
        return torch.stack([g, -g], 1)
