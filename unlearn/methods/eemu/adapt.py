"""EEMU's inference-time adaptation: per (user, shard) one step of a fresh Adam on a few of the
user's rows, then every item is scored.

The step is the first step of a freshly created Adam (= `lr * g / (|g| + eps)`, exactly) on
`n_adapt` of the user's rows drawn with replacement by a softmax over inverse item degree at
`temperature`, one uniform negative each (rejected against the user's rows). The rows it may read
are given to it: at inference the method's retained rows (degrees recomputed from them), during a
shard's training that shard's rows. Its random numbers are a counter-based stream
(`seeding.stream_uniforms`) keyed by (seed, shard, user, draw), so every (seed, shard, user) has its
own stream and drawing for many users at once is vectorised.

`adapt: user_tower` adapts the user tower only (item vectors computed once per shard), `adapt: all`
every weight (an item-tower pass over all items per user and shard), `adapt: none` nothing: the
meta-trained weights score as they are (the ablation without adaptation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, vmap

from ...data.csr import CSR
from ...data.interactions import Interactions
from ...seeding import stream_uniforms

ADAPT = ("user_tower", "all", "none")
EPS = 1e-8


def fresh_adam_step(g: torch.Tensor, lr: float) -> torch.Tensor:
    """The first step of a freshly created Adam (bias-corrected moments equal g and g^2)."""
    return lr * g / (g.abs() + EPS)


def split_tensors(model) -> tuple[dict, dict]:
    """A module's parameters and buffers by name (what the functional losses take)."""
    return dict(model.named_parameters()), dict(model.named_buffers())


def user_loss(model, params: dict, buffers: dict, user, pos, neg, mask) -> torch.Tensor:
    """One user's mean margin loss over its (masked) rows, as a function of the weights."""
    return model.margin_loss({**buffers, **params}, user, pos, neg, mask)


class Adapter:
    """Adapts a shard model to users from the rows it is given, and scores every item."""

    def __init__(self, rows: Interactions, n_users: int, n_items: int, cfg: dict, device: torch.device):
        self.n_users, self.n_items, self.device = n_users, n_items, device
        self.n_adapt = int(cfg["n_adapt"])
        self.lr = float(cfg["adapt_lr"])
        self.temperature = float(cfg["temperature"])
        self.mode = str(cfg["adapt"])
        self.csr = CSR(rows, n_users, n_items, torch.device("cpu"))  # items per user, ascending
        self.items = self.csr.indices.numpy()
        self.counts = self.csr.counts.numpy()
        self.indptr = self.csr.indptr.numpy()
        degree = np.bincount(rows.items, minlength=n_items).astype(np.float64)  # from these rows only
        self.logit = (1.0 / np.maximum(degree, 1.0)) / self.temperature

    def sets(self, users: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(len(users), n_adapt) positives and negatives, and which users have rows at all."""
        users = np.asarray(users, dtype=np.int64)
        n, c = self.n_adapt, self.counts[users]
        has = c > 0
        pos = np.zeros((len(users), n), dtype=np.int64)
        neg = np.zeros((len(users), n), dtype=np.int64)
        if not has.any():
            return pos, neg, has
        hu, hc = users[has], c[has]
        start = self.indptr[hu]
        seg = np.repeat(np.arange(len(hu)), hc)
        flat = np.arange(hc.sum()) - np.repeat(np.cumsum(hc) - hc, hc) + np.repeat(start, hc)
        items = self.items[flat]
        logit = self.logit[items]
        seg_start = np.cumsum(hc) - hc
        w = np.exp(logit - np.maximum.reduceat(logit, seg_start)[seg])
        cw = np.cumsum(w)
        base = np.where(seg_start > 0, cw[np.maximum(seg_start - 1, 0)], 0.0)
        total = cw[seg_start + hc - 1] - base
        u = stream_uniforms(key, hu, n, salt=0)
        target = base[:, None] + u * total[:, None]
        pick = np.searchsorted(cw, target, side="right")
        pick = np.clip(pick, seg_start[:, None], (seg_start + hc - 1)[:, None])
        pos[has] = items[pick]
        # negatives: uniform, rejected against the user's rows (fresh draws of the same stream)
        ng = np.floor(stream_uniforms(key, hu, n, salt=1) * self.n_items).astype(np.int64)
        hu_t = torch.as_tensor(hu)
        for r in range(2, 22):
            bad = self.csr.contains(hu_t, torch.as_tensor(ng)).numpy()
            if not bad.any():
                break
            fresh = np.floor(stream_uniforms(key, hu, n, salt=r) * self.n_items).astype(np.int64)
            ng = np.where(bad, fresh, ng)
        neg[has] = ng
        return pos, neg, has

    def score(self, model, users: torch.Tensor, key: int) -> torch.Tensor:
        """(len(users), n_items) scores of `model` adapted to each user (users of one block)."""
        params, buffers = split_tensors(model)
        params = {k: v.detach() for k, v in params.items()}
        if self.mode == "none":
            p = {**buffers, **params}
            with torch.no_grad():
                return model.user_vec(p, users) @ model.item_vec(p).T
        pos, neg, has = self.sets(users.cpu().numpy(), key)
        dev = users.device
        pos, neg = torch.as_tensor(pos, device=dev), torch.as_tensor(neg, device=dev)
        mask = torch.as_tensor(has, device=dev, dtype=torch.float32)[:, None].expand(-1, self.n_adapt)
        lr = self.lr
        with torch.enable_grad():
            if self.mode == "user_tower":
                # The user tower's weights, with the user's embedding rows taken as the gathered
                # input x (each row enters the loss once, so its gradient is x's gradient and the
                # elementwise fresh-Adam step on x equals the step on the tables' rows), without
                # per-user copies of whole embedding tables.
                p = {**buffers, **params}
                iv = model.item_vec(p)
                xs = model.user_input(p, users)
                mlp = {k: params[k] for k in model.user_keys() if k.startswith("ul")}
                margin = float(model.cfg["margin"])

                def one(x, ps, ng, m):
                    def loss(pu):
                        u = model.user_mlp(pu, pu["x"])
                        diff = (u * iv[ps]).sum(-1) - (u * iv[ng]).sum(-1)
                        return (torch.relu(margin - diff) * m).sum() / m.sum().clamp(min=1.0)

                    pu = {"x": x, **mlp}
                    g = grad(loss)(pu)
                    a = {k: pu[k] - fresh_adam_step(g[k], lr) for k in pu}
                    return model.user_mlp(a, a["x"])

                uv = vmap(one)(xs, pos, neg, mask)
                return (uv @ iv.T).detach()

            def one_all(user, ps, ng, m):
                g = grad(lambda pr: user_loss(model, pr, buffers, user, ps, ng, m))(params)
                p2 = {**buffers, **{k: params[k] - fresh_adam_step(g[k], lr) for k in params}}
                return model.user_vec(p2, user) @ model.item_vec(p2).T

            return vmap(one_all)(users, pos, neg, mask).detach()


def blocked_scores(adapter: Adapter, model, users: torch.Tensor, key: int, block: int) -> torch.Tensor:
    return torch.cat([adapter.score(model, users[s : s + block], key) for s in range(0, len(users), block)])
