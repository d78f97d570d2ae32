"""Matrix factorisation trained with the pointwise logistic loss on sampled negatives (CURE4Rec's
"WMF"): every positive of the shard has label 1, and `num_neg` negatives per positive, drawn
uniformly and rejected against the user's positives *in the shard* (`NegativeSampler`), have
label 0. The loss is the mean binary cross-entropy over all positive and negative pairs of the
batch, plus an L2 penalty on the embeddings used in the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import SUBMODELS
from .bpr import BPRMF


@SUBMODELS.register("bce")
class BCEMF(BPRMF):
    loss_family = "bce"
    defaults = {**BPRMF.defaults, "lr": 0.005, "num_neg": 1}

    def __init__(self, n_users, n_items, cfg=None, **kw):
        super().__init__(n_users, n_items, cfg, **kw)
        if int(self.cfg["num_neg"]) < 1:
            raise ConfigError(f"submodel.num_neg must be at least 1 for bce, got {self.cfg['num_neg']}.")

    def batches(self, gen):
        n, m = len(self._u), int(self.cfg["num_neg"])
        perm = torch.randperm(n, generator=gen).to(self.device)
        users, pos = self._u[perm], self._i[perm]
        neg = self._sampler.sample(users.repeat(m), gen).view(m, n)  # row r: the r-th negative of each positive
        bs = int(self.cfg["batch_size"])
        for s in range(0, n, bs):
            yield users[s : s + bs], pos[s : s + bs], neg[:, s : s + bs]

    def loss(self, batch):
        users, pos, neg = batch
        u = self.user_vectors(users)
        i, j = self.item_emb[pos], self.item_emb[neg]  # (b, d), (m, b, d)
        pos_logit = (u * i).sum(-1)  # (b,)
        neg_logit = (u[None] * j).sum(-1).flatten()  # (m * b,)
        logits = torch.cat([pos_logit, neg_logit])
        labels = torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)])
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        reg = float(self.cfg["reg"]) * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2 * len(users))
        return bce + reg

    def score_slots(self, batch):
        users, pos, neg = batch
        return users, torch.cat([pos[:, None], neg.T], 1)  # (b, 1 + m)

    def score_grad(self, batch, s):
        """d/ds of the mean cross-entropy over the b (1 + m) pairs: (sigmoid(s) - label) / n."""
        g = torch.sigmoid(s)
        g[:, 0] -= 1.0
        return g.div_(s.numel())
