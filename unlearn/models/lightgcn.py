"""LightGCN (He et al., SIGIR 2020) trained with BPR, one graph per shard.

The bipartite adjacency A = [[0, R], [R^T, 0]] is built from the shard's own rows and normalised
symmetrically, D^-1/2 A D^-1/2, with degrees counted in the shard only (a node the shard never
sees has degree 0 and stays at its initial embedding). Propagation: `n_layers` sparse matmuls on
the device; the final representation is the mean of layers 0..L. Negatives are rejected against
the user's positives in the shard. After training the propagated embeddings are stored as
buffers (part of the state dict), so scoring and `embeddings()` need no graph.

The sparse product uses A for the backward pass too (A is symmetric), so no sparse transpose
is built and CPU training is deterministic.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..data.interactions import TrainSet
from ..registry import SUBMODELS
from ..runtime import CPU
from .base import MatrixFactorization


class _SymmetricSpMM(torch.autograd.Function):
    """y = A x for a symmetric sparse A; dx = A^T dy = A dy."""

    @staticmethod
    def forward(ctx, adj, x):
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.adj, grad)


def normalized_adjacency(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, device: torch.device
) -> torch.Tensor:
    """Symmetric-normalised bipartite adjacency (CSR) from one shard's rows (duplicates merged)."""
    n = n_users + n_items
    key = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    u, i = key // n_items, key % n_items
    deg_u = np.bincount(u, minlength=n_users).astype(np.float64)
    deg_i = np.bincount(i, minlength=n_items).astype(np.float64)
    w = 1.0 / np.sqrt(deg_u[u] * deg_i[i])
    rows = np.concatenate([u, n_users + i])
    cols = np.concatenate([n_users + i, u])
    vals = np.concatenate([w, w]).astype(np.float32)
    order = np.lexsort((cols, rows))
    coo = torch.sparse_coo_tensor(
        torch.as_tensor(np.stack([rows[order], cols[order]])),
        torch.as_tensor(vals[order]),
        (n, n),
        check_invariants=True,
    ).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr().to(device)


@SUBMODELS.register("lightgcn")
class LightGCN(MatrixFactorization):
    loss_family = "bpr"
    defaults = {
        **MatrixFactorization.defaults,
        # RecEraser README, ML-1M: Adam lr 1e-3, reg 1e-3, batch 1024
        "dim": 64,
        "n_layers": 3,
        "optimizer": "adam",
        "lr": 1e-3,
        "reg": 1e-3,
        "batch_size": 1024,
        "init_std": 0.1,
        # Adam at 1e-3 plateaus for a while after the first epochs: evaluate every 5 epochs and stop
        # 50 epochs (10 evaluations) after the last improvement (the released code's every-5 / flag_step 10)
        "epochs": 1000,
        "eval_every": 5,
        "patience": 50,
    }

    def __init__(self, n_users, n_items, cfg=None, runtime=CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        d = int(self.cfg["dim"])
        # propagated representations of the trained model (filled by `finish`)
        self.register_buffer("user_out", torch.zeros(self.n_users, d))
        self.register_buffer("item_out", torch.zeros(self.n_items, d))
        self._adj = None
        self._cache = None

    def prepare(self, data: TrainSet):
        super().prepare(data)
        self._adj = normalized_adjacency(data.train.users, data.train.items, self.n_users, self.n_items, self.device)
        self._cache = None

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.user_emb, self.item_emb])
        total = x
        for _ in range(int(self.cfg["n_layers"])):
            x = _SymmetricSpMM.apply(self._adj, x)
            total = total + x
        out = total / (int(self.cfg["n_layers"]) + 1)
        return out[: self.n_users], out[self.n_users :]

    def train(self, mode: bool = True):
        self._cache = None  # parameters are about to change
        return super().train(mode)

    def loss(self, batch):
        users, pos, neg = batch
        pu, pi = self.propagate()
        u, i, j = pu[users], pi[pos], pi[neg]
        diff = (u * i).sum(1) - (u * j).sum(1)
        ego = self.user_emb[users].pow(2).sum() + self.item_emb[pos].pow(2).sum() + self.item_emb[neg].pow(2).sum()
        return -F.logsigmoid(diff).mean() + float(self.cfg["reg"]) * ego / (2 * len(users))

    def _propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._adj is None:  # trained (or loaded) model: the stored representations
            return self.user_out, self.item_out
        if self._cache is None:
            with torch.no_grad():
                self._cache = tuple(t.detach() for t in self.propagate())
        return self._cache

    def score(self, users):
        pu, pi = self._propagated()
        return pu[users] @ pi.T

    def embeddings(self):
        pu, pi = self._propagated()
        return pu.detach(), pi.detach()

    def finish(self):
        with torch.no_grad():
            pu, pi = self.propagate()
            self.user_out.copy_(pu)
            self.item_out.copy_(pi)
        super().finish()  # releases the training triples
        self._adj = None
        self._cache = None
