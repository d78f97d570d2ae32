"""The attention network of RecEraser's aggregator (Chen et al., WWW 2022, Sec. 3.3).

For every shard k the frozen shard model gives user and item embeddings e^k (for LightGCN the
propagated ones). Each is mapped by a per-shard affine transfer t^k = W_k e^k + b_k (one W_k, b_k
per shard shared by users and items, as the released code's `trans_W`/`trans_B`; `separate=True`
gives users and items their own). A one-hidden-layer attention net, separate for users and items,
scores the K transferred vectors,

    a_k = h^T ReLU(W_A t^k + b_A),   alpha = softmax_k(a),   e = sum_k alpha_k t^k,

and the score is e_u . e_i. Kept apart from the aggregator (`attention.py`) so that the module that
holds the trainable parameters is small and the training schedules (`schedules.py`) can take it as
an argument.

Initialisation of the transfer (`reset_parameters`' `init`): `glorot` (glorot-normal W_k and b_k,
RecEraser_BPR.py / RecEraser_LightGCN.py), `normal` (N(0, 0.01^2), RecEraser_WMF.py's
random_normal_initializer(stddev=0.01)) or `identity` (W_k = I, b_k = 0: training starts from the
plain average of the shard embeddings). The attention layers follow the released code: truncated
normal weights, zero biases, h = 0.01.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class AttentionNet(torch.nn.Module):
    def __init__(self, k: int, d: int, hidden: int, separate: bool):
        super().__init__()
        self.separate = separate
        self.trans_w = torch.nn.Parameter(torch.empty(k, d, d))
        self.trans_b = torch.nn.Parameter(torch.empty(k, d))
        if separate:
            self.trans_w_item = torch.nn.Parameter(torch.empty(k, d, d))
            self.trans_b_item = torch.nn.Parameter(torch.empty(k, d))
        self.wa = torch.nn.Parameter(torch.empty(d, hidden))  # user attention
        self.ba = torch.nn.Parameter(torch.empty(hidden))
        self.ha = torch.nn.Parameter(torch.empty(hidden))
        self.wb = torch.nn.Parameter(torch.empty(d, hidden))  # item attention
        self.bb = torch.nn.Parameter(torch.empty(hidden))
        self.hb = torch.nn.Parameter(torch.empty(hidden))

    def reset_parameters(self, gen: torch.Generator, init: str) -> None:
        k, d, _ = self.trans_w.shape
        hidden = self.wa.shape[1]
        with torch.no_grad():
            pairs = [(self.trans_w, self.trans_b)]
            if self.separate:
                pairs.append((self.trans_w_item, self.trans_b_item))
            for w, b in pairs:
                if init == "identity":
                    w.copy_(torch.eye(d).expand(k, d, d))
                    b.zero_()
                elif init == "normal":  # RecEraser_WMF.py: tf.random_normal_initializer(stddev=0.01)
                    w.copy_(torch.randn(w.shape, generator=gen) * 0.01)
                    b.copy_(torch.randn(b.shape, generator=gen) * 0.01)
                else:  # glorot normal, as tf.initializers.glorot_normal on (K, d, d) and (K, d)
                    w.copy_(torch.randn(w.shape, generator=gen) * math.sqrt(2.0 / (k * d + k * d)))
                    b.copy_(torch.randn(b.shape, generator=gen) * math.sqrt(2.0 / (k + d)))
            std = math.sqrt(2.0 / (hidden + d))  # released: truncated normal; bias 0; h = 0.01
            for w, b, h in ((self.wa, self.ba, self.ha), (self.wb, self.bb, self.hb)):
                w.copy_(torch.fmod(torch.randn(w.shape, generator=gen), 2.0) * std)
                b.zero_()
                h.fill_(0.01)

    def transfer(self, e: torch.Tensor, item: bool) -> torch.Tensor:
        """(K x B x d) -> (K x B x d): W_k e^k + b_k."""
        w, b = (self.trans_w_item, self.trans_b_item) if (item and self.separate) else (self.trans_w, self.trans_b)
        return torch.baddbmm(b[:, None, :], e, w)

    def combine(self, e: torch.Tensor, item: bool) -> torch.Tensor:
        """Attention-weighted sum over the K transferred vectors: (K x B x d) -> (B x d)."""
        t = self.transfer(e, item)
        w, b, h = (self.wb, self.bb, self.hb) if item else (self.wa, self.ba, self.ha)
        logits = F.relu(t @ w + b) @ h  # (K x B)
        alpha = torch.softmax(logits, dim=0)
        return (alpha[:, :, None] * t).sum(0)

    def transfer_l2(self) -> torch.Tensor:
        total = self.trans_w.pow(2).sum() + self.trans_b.pow(2).sum()
        if self.separate:
            total = total + self.trans_w_item.pow(2).sum() + self.trans_b_item.pow(2).sum()
        return 0.5 * total
