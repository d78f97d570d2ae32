"""Matrix factorisation trained with the BPR pairwise loss (Rendle et al., 2009)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.interactions import TrainSet
from ..registry import SUBMODELS
from ..runtime import CPU
from .base import EpochTrainedModel, NegativeSampler


@SUBMODELS.register("bpr")
class BPRMF(EpochTrainedModel):
    defaults = {
        **EpochTrainedModel.defaults,
        "dim": 64,
        "reg": 1e-4,
        "init_std": 0.01,
        "dropout": 0.0,  # on the user vector, as RecEraser's "keep 0.7"
    }

    def __init__(self, n_users, n_items, cfg=None, runtime=CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        d = int(self.cfg["dim"])
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, d))

    def reset_parameters(self, gen):
        std = float(self.cfg["init_std"])
        with torch.no_grad():
            self.user_emb.copy_(torch.randn(self.user_emb.shape, generator=gen) * std)
            self.item_emb.copy_(torch.randn(self.item_emb.shape, generator=gen) * std)

    def prepare(self, data: TrainSet):
        dev = self.device
        self._u = torch.as_tensor(data.train.users, device=dev)
        self._i = torch.as_tensor(data.train.items, device=dev)
        self._sampler = NegativeSampler(self._u, self._i, self.n_items)

    def batches(self, gen):
        n = len(self._u)
        perm = torch.randperm(n, generator=gen).to(self.device)
        users, pos = self._u[perm], self._i[perm]
        neg = self._sampler.sample(users, gen)
        bs = int(self.cfg["batch_size"])
        for s in range(0, n, bs):
            yield users[s : s + bs], pos[s : s + bs], neg[s : s + bs]

    def user_vectors(self, users):
        u = self.user_emb[users]
        p = float(self.cfg["dropout"])
        if not (self.training and p > 0):
            return u
        keep = (torch.rand(u.shape, generator=self._gen) >= p).to(u.device)
        return u * keep / (1.0 - p)

    def loss(self, batch):
        users, pos, neg = batch
        u = self.user_vectors(users)
        i, j = self.item_emb[pos], self.item_emb[neg]
        diff = (u * i).sum(1) - (u * j).sum(1)
        reg = float(self.cfg["reg"]) * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2 * len(users))
        return -F.logsigmoid(diff).mean() + reg

    def score(self, users):
        return self.user_emb[users] @ self.item_emb.T

    def embeddings(self):
        return self.user_emb.detach(), self.item_emb.detach()

    def finish(self):
        self._u = self._i = self._sampler = None
