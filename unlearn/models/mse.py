"""UltraRE's sub-model: matrix factorisation trained with the squared error on ratings scaled to
[0, 1].

Targets are (r - r_min) / (r_max - r_min) with r_min, r_max taken over the shard's own rows (a
shard reads nothing else). The prediction is the plain dot product of the user and item vectors.

Implicit data (every rating in the shard equal, e.g. CURE4Rec's splits where every rating is 1):
the scaled target is 1 for every observed pair, and squared error on positives alone has a
trivial minimiser (predict 1 everywhere). As UltraRE's MF does on implicit data, unobserved pairs
are then sampled as negatives with target 0: `num_neg` per positive, drawn uniformly and rejected
against the user's positives in the shard (`NegativeSampler`), fresh every epoch. `num_neg: auto`
(the default) means 1 negative per positive on implicit shards and none on explicit ones (pure
rating regression); an integer forces that many negatives on either kind, with target 0 (the
same target as the lowest rating).
"""

from __future__ import annotations

import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..registry import SUBMODELS
from ..training import NegativeSampler
from .bpr import BPRMF


@SUBMODELS.register("mse")
class MSEMF(BPRMF):
    loss_family = "mse"
    defaults = {**BPRMF.defaults, "lr": 0.005, "num_neg": "auto"}

    def __init__(self, n_users, n_items, cfg=None, **kw):
        super().__init__(n_users, n_items, cfg, **kw)
        m = self.cfg["num_neg"]
        if m != "auto" and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise ConfigError(f"submodel.num_neg must be 'auto' or a non-negative integer for mse, got {m!r}.")

    def prepare(self, data: TrainSet):
        dev = self.device
        self._u = torch.as_tensor(data.train.users, device=dev)
        self._i = torch.as_tensor(data.train.items, device=dev)
        r = torch.as_tensor(data.train.ratings, dtype=torch.float32)
        lo, hi = (float(r.min()), float(r.max())) if len(r) else (0.0, 0.0)
        implicit = hi <= lo
        self._target = (torch.ones_like(r) if implicit else (r - lo) / (hi - lo)).to(dev)
        m = self.cfg["num_neg"]
        self._num_neg = (1 if implicit else 0) if m == "auto" else int(m)
        self._sampler = NegativeSampler(self._u, self._i, self.n_items) if self._num_neg else None

    def batches(self, gen):
        n, m = len(self._u), self._num_neg
        perm = torch.randperm(n, generator=gen).to(self.device)
        users, pos, target = self._u[perm], self._i[perm], self._target[perm]
        neg = self._sampler.sample(users.repeat(m), gen).view(m, n) if m else None
        bs = int(self.cfg["batch_size"])
        for s in range(0, n, bs):
            yield users[s : s + bs], pos[s : s + bs], target[s : s + bs], None if neg is None else neg[:, s : s + bs]

    def loss(self, batch):
        users, pos, target, neg = batch
        u = self.user_vectors(users)
        i = self.item_emb[pos]
        pred = (u * i).sum(-1)
        sq = (pred - target).pow(2)
        reg = u.pow(2).sum() + i.pow(2).sum()
        if neg is not None:
            j = self.item_emb[neg]  # (m, b, d)
            sq = torch.cat([sq, (u[None] * j).sum(-1).flatten().pow(2)])  # target 0
            reg = reg + j.pow(2).sum()
        return sq.mean() + float(self.cfg["reg"]) * reg / (2 * len(users))

    def score_slots(self, batch):
        users, pos, _, neg = batch
        return users, pos[:, None] if neg is None else torch.cat([pos[:, None], neg.T], 1)

    def score_grad(self, batch, s):
        """d/ds of the mean squared error over the b (1 + m) pairs (negatives target 0)."""
        target = torch.zeros_like(s)
        target[:, 0] = batch[2]
        return (s - target).mul_(2.0 / s.numel())

    def finish(self):
        super().finish()
        self._target = None
