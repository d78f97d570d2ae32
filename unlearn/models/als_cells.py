"""The observed matrix of implicit ALS: confidence weights and the two CSR orientations.

`ImplicitALS` keeps its observed cells as user-major and item-major CSR tensors on the device
(`Side`), each able to hand out padded buckets of rows with similar counts for the batched
Cholesky solves. The confidence weights w = c - 1 are computed from the current cells alone, so
they are what a model trained on exactly those cells would use. Kept apart from the model class
so that the matrix bookkeeping and the weighting read on their own.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


def _gather_rows(crow: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a subset of CSR rows: (new crow, positions of their entries in the full arrays)."""
    start, counts = crow[rows], crow[rows + 1] - crow[rows]
    new_crow = torch.zeros(len(rows) + 1, dtype=crow.dtype, device=crow.device)
    new_crow[1:] = torch.cumsum(counts, 0)
    total = int(new_crow[-1])
    offsets = torch.arange(total, device=crow.device) - torch.repeat_interleave(new_crow[:-1], counts)
    return new_crow, torch.repeat_interleave(start, counts) + offsets


class Side:
    """One orientation of the observed matrix (rows = the side being solved)."""

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, w: torch.Tensor, n_rows: int, n_cols: int):
        self.crow, self.col, self.w = crow, col, w  # w = c - 1 = alpha * r on observed cells
        self.n_rows, self.n_cols = n_rows, n_cols
        self.counts = crow[1:] - crow[:-1]
        self._plans: dict = {}

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, (self.n_rows, self.n_cols))

    def subset(self, rows: torch.Tensor) -> "Side":
        crow, pos = _gather_rows(self.crow, rows)
        return Side(crow, self.col[pos], self.w[pos], len(rows), self.n_cols)

    @property
    def uniform_weight(self) -> float | None:
        """The common value of w when every observed cell has the same confidence (binarized
        linear confidence), else None."""
        if not hasattr(self, "_uniform"):
            self._uniform = None
            if len(self.w) and bool((self.w == self.w[0]).all()):
                self._uniform = float(self.w[0])
        return self._uniform

    def plan(self, dim: int, gather_budget: int, batch_cap: int, ratio: float = 1.25) -> list:
        """Padded buckets of rows with similar counts (lengths within `ratio`):
        [(rows, cols (B x L), weights (B x L))]. Padding points at column `n_cols` (a zero row
        appended to the other side's factors) with weight 0. A bucket gathers at most
        `gather_budget` values (B * L * dim) and holds at most `batch_cap` rows, so the batch stays
        in cache through product, factorisation and solves. Rows without observed cells are left
        out (their solution is 0). Cached until the observed cells change."""
        key = (dim, gather_budget, batch_cap)
        if key in self._plans:
            return self._plans[key]
        dev = self.crow.device
        sorted_counts, sorted_rows = torch.sort(self.counts, stable=True)
        cs = sorted_counts.cpu().numpy()
        buckets, s, n = [], int(np.searchsorted(cs, 1)), len(cs)
        while s < n:
            lim = max(int(math.ceil(cs[s] * ratio)), int(cs[s]))
            e = int(np.searchsorted(cs, lim, side="right"))
            e = min(e, s + max(1, min(gather_budget // (lim * dim), batch_cap)))
            length = int(cs[e - 1])
            r = sorted_rows[s:e]
            pos = torch.arange(length, device=dev).unsqueeze(0)
            cnt = sorted_counts[s:e].unsqueeze(1)
            mask = pos < cnt
            idx = self.crow[r].unsqueeze(1) + torch.minimum(pos, cnt - 1)
            cols = torch.where(mask, self.col[idx], torch.full((), self.n_cols, dtype=self.col.dtype, device=dev))
            w = torch.where(mask, self.w[idx], torch.zeros((), dtype=self.w.dtype, device=dev))
            buckets.append((r, cols, w))
            s = e
        self._plans[key] = buckets
        return buckets


def both_sides(u: torch.Tensor, i: torch.Tensor, w: torch.Tensor, n_users: int, n_items: int, dev) -> tuple[Side, Side]:
    """(user-major, item-major) orientations of the observed cells (u, i) with weights w, given
    sorted user-major (as the cell keys u * n_items + i are); the row pointers live on `dev`."""
    ucrow = torch.zeros(n_users + 1, dtype=torch.long, device=dev)
    ucrow[1:] = torch.cumsum(torch.bincount(u, minlength=n_users), 0)
    by_user = Side(ucrow, i, w, n_users, n_items)
    order = torch.sort(i * n_users + u).indices
    icrow = torch.zeros(n_items + 1, dtype=torch.long, device=dev)
    icrow[1:] = torch.cumsum(torch.bincount(i, minlength=n_items), 0)
    by_item = Side(icrow, u[order], w[order], n_items, n_users)
    return by_user, by_item


def confidence_weights(cfg: dict, n_users: int, n_items: int, u: torch.Tensor, i: torch.Tensor, raw: torch.Tensor):
    """w = c - 1 for every observed cell (u, i) with raw value `raw`, under the sub-model config
    `cfg`: c = 1 + alpha f(r), or alpha f(r) with `plus_one: false` (the Unlearn-ALS paper code feeds
    `implicit` the matrix 5 * bm25(B = 0.9) itself, and `implicit` reads that matrix as the
    confidence c)."""
    c = cfg
    r = torch.ones_like(raw) if c["binarize"] else raw
    if c["confidence"] == "bm25":
        # implicit.nearest_neighbours.bm25_weight on the item x user matrix (documents = items,
        # terms = users), as in implicit's lastfm example and the ALS paper code built on it.
        k1, b = float(c["bm25_k1"]), float(c["bm25_b"])
        n_docs = float(n_items)
        idf = math.log(n_docs) - torch.log1p(torch.bincount(u, minlength=n_users).to(torch.float64))
        row_sums = torch.zeros(n_items, dtype=torch.float64, device=r.device).index_add_(0, i, r)
        avg = row_sums.mean().clamp_min(1e-12)
        length_norm = (1.0 - b) + b * row_sums / avg
        r = (r * (k1 + 1.0) / (k1 * length_norm[i] + r) * idf[u]).clamp_min(0.0)
    if c["plus_one"]:
        return float(c["alpha"]) * r
    return float(c["alpha"]) * r - 1.0  # c = alpha f(r) (>= 0, so every solve stays positive definite)
