"""Implicit ALS (Hu, Koren & Volinsky, ICDM 2008), solved in batches on the device.

Objective over ALL user x item cells:

    L(X, Y) = sum_ui c_ui (p_ui - x_u . y_i)^2 + reg (||X||^2 + ||Y||^2)

with p = 1 and c = 1 + alpha * r on observed cells (r the rating, 1 when binarized, or its BM25
weight; `plus_one: false` drops the 1) and p = 0, c = 1 everywhere else. With the other side fixed, every user's
factor is the
closed-form solution of

    A_u x_u = b_u,   A_u = Y^T Y + Y_u^T (C_u - I) Y_u + reg I,   b_u = Y_u^T C_u p_u,

where only the user's observed items enter the correction (the Gram trick). A half-sweep solves
all users (then all items) at once:

- `solver: cholesky` (exact): users are grouped into buckets of similar observed counts and
  padded; per bucket the corrections are one batched matrix product (bmm), followed by a batched
  Cholesky factorisation (`torch.linalg.cholesky_ex`) and two batched triangular solves. The
  bucket size is bounded by `chunk_mb`.
- `solver: cg`: `cg_steps` conjugate-gradient steps warm-started from the current factors, as in
  the `implicit` library; each step is one sampled dense-dense product (SDDMM) and one sparse x
  dense product (SpMM) on the observed CSR matrix, never a dense n_users x n_items matrix.

The objective is computed exactly with the same trick: sum_all s_ui^2 = <X^T X, Y^T Y> plus the
observed-cell correction sum_obs [c (1 - s)^2 - s^2] (s from an SDDMM), accumulated in float64.

The observed matrix lives on the device as user-major and item-major CSR tensors, so cells can be
marked unobserved (p = 0, c = 1) for unlearning: `unobserve(users, items)`. After such a change the
objective *is* the objective of training on the remaining cells from scratch.

Conventions: `implicit` (>= 0.5) takes the matrix of confidences C itself and uses c - 1 in the
correction, with its own `alpha` multiplying the matrix; this module's c = 1 + alpha r equals
`implicit` fed with the matrix 1 + alpha r and alpha = 1 (see benchmarks/perf/als_vs_implicit.py).
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..metrics.ranking import RankingEvaluator
from ..registry import SUBMODELS
from ..runtime import CPU
from .base import SubModel

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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


class _Side:
    """One orientation of the observed matrix (rows = the side being solved)."""

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, w: torch.Tensor, n_rows: int, n_cols: int):
        self.crow, self.col, self.w = crow, col, w  # w = c - 1 = alpha * r on observed cells
        self.n_rows, self.n_cols = n_rows, n_cols
        self.counts = crow[1:] - crow[:-1]
        self._plans: dict = {}

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, (self.n_rows, self.n_cols))

    def subset(self, rows: torch.Tensor) -> "_Side":
        crow, pos = _gather_rows(self.crow, rows)
        return _Side(crow, self.col[pos], self.w[pos], len(rows), self.n_cols)

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


@SUBMODELS.register("als")
class ImplicitALS(SubModel):
    loss_family = "als"
    defaults = {
        "dim": 64,
        "reg": 0.01,
        "alpha": 1.0,
        "confidence": "linear",  # linear: c = 1 + alpha r | bm25: c = 1 + alpha bm25(r)
        "bm25_k1": 100.0,  # as implicit's lastfm example (bm25_weight(K1=100, B=0.8))
        "bm25_b": 0.8,
        "plus_one": True,  # c = 1 + alpha f(r); false: c = alpha f(r) (the ALS paper's code: 5 * bm25, no +1)
        "binarize": True,  # r = 1 for every observed cell (implicit feedback)
        "solver": "cholesky",  # cholesky (exact solves) | cg (cg_steps warm-started CG steps)
        "cg_steps": 3,
        "iterations": 50,  # maximum sweeps in fit()
        "tol": 1.0e-4,  # stop when the relative objective change of a sweep is below
        "init_std": 0.01,
        "dtype": "float32",
        "chunk_mb": 2,  # MB gathered per bucket (cholesky): small enough to stay in cache
        "valid_metric": None,  # e.g. recall@10: evaluated once after fit (not used for stopping)
    }

    def __init__(self, n_users, n_items, cfg=None, runtime=CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        c = self.cfg
        if "factors" in c:  # the name `implicit` uses
            c["dim"] = c.pop("factors")
        if c["confidence"] not in ("linear", "bm25"):
            raise ConfigError(f"Unknown submodel.confidence '{c['confidence']}'. Valid: linear, bm25.")
        if c["solver"] not in ("cholesky", "cg"):
            raise ConfigError(f"Unknown submodel.solver '{c['solver']}'. Valid: cholesky, cg.")
        if str(c["dtype"]) not in _DTYPES:
            raise ConfigError(f"Unknown submodel.dtype '{c['dtype']}'. Valid: {', '.join(_DTYPES)}.")
        if not float(c["reg"]) > 0:
            raise ConfigError(f"submodel.reg must be > 0 for ALS (got {c['reg']}).")
        if float(c["alpha"]) < 0:
            raise ConfigError(f"submodel.alpha must be >= 0 (got {c['alpha']}).")
        if int(c["cg_steps"]) < 1 or int(c["iterations"]) < 1 or int(c["dim"]) < 1:
            raise ConfigError("submodel.cg_steps, submodel.iterations and submodel.dim must be >= 1.")
        self.dtype = _DTYPES[str(c["dtype"])]
        d = int(c["dim"])
        self.dim = d
        self.user_factors = torch.nn.Parameter(torch.zeros(self.n_users, d, dtype=self.dtype), requires_grad=False)
        self.item_factors = torch.nn.Parameter(torch.zeros(self.n_items, d, dtype=self.dtype), requires_grad=False)
        floats = max(1, int(float(c["chunk_mb"]) * 2**20 / (torch.finfo(self.dtype).bits // 8)))
        self._gather_budget = floats  # gathered factor rows per bucket
        self._batch_cap = max(1, floats // (d * d))  # systems per batched factorisation
        self._cells = None
        self.history: list[float] = []

    # -- the observed matrix ---------------------------------------------------------------
    def observe(self, users, items, ratings=None) -> None:
        """Set the observed cells from interaction rows (duplicates of a cell are summed;
        with `binarize` every observed cell has r = 1)."""
        dev = self.device
        u = torch.as_tensor(np.asarray(users), dtype=torch.long, device=dev)
        i = torch.as_tensor(np.asarray(items), dtype=torch.long, device=dev)
        r = (
            torch.ones(len(u), dtype=torch.float64, device=dev)
            if ratings is None
            else torch.as_tensor(np.asarray(ratings), dtype=torch.float64, device=dev)
        )
        if len(u) and (
            int(u.min()) < 0 or int(u.max()) >= self.n_users or int(i.min()) < 0 or int(i.max()) >= self.n_items
        ):
            raise ValueError("observed cells outside the id universe")
        keys, inverse = torch.unique(u * self.n_items + i, sorted=True, return_inverse=True)
        raw = torch.zeros(len(keys), dtype=torch.float64, device=dev).index_add_(0, inverse, r)
        self._set_cells(keys, raw)

    def unobserve(self, users, items) -> int:
        """Mark cells unobserved (p = 0, c = 1). Returns how many observed cells were removed."""
        keys = self._keys(users, items)
        keep = ~torch.isin(self._cells[0], keys)
        removed = int((~keep).sum())
        if removed:
            self._set_cells(self._cells[0][keep], self._cells[1][keep])
        return removed

    def set_cells(self, users, items, ratings) -> None:
        """Change the raw value r of cells that are observed (e.g. a duplicate row was deleted)."""
        keys = self._keys(users, items)
        pos = torch.searchsorted(self._cells[0], keys).clamp(max=len(self._cells[0]) - 1)
        if not bool((self._cells[0][pos] == keys).all()):
            raise ValueError("set_cells: some cells are not observed")
        raw = self._cells[1].clone()
        raw[pos] = torch.as_tensor(np.asarray(ratings), dtype=torch.float64, device=self.device)
        self._set_cells(self._cells[0], raw)

    def observed_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, raw r) of the observed cells, user-major."""
        keys, raw = self._cells
        k = keys.cpu().numpy()
        return k // self.n_items, k % self.n_items, raw.cpu().numpy()

    def _keys(self, users, items) -> torch.Tensor:
        u = torch.as_tensor(np.asarray(users), dtype=torch.long, device=self.device)
        i = torch.as_tensor(np.asarray(items), dtype=torch.long, device=self.device)
        return torch.unique(u * self.n_items + i)

    def confidence_weights(self, u: torch.Tensor, i: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """w = c - 1 for every observed cell, computed from the current cells only (so it is what
        a model trained on exactly these cells would use). c = 1 + alpha f(r), or alpha f(r) with
        `plus_one: false` (the Unlearn-ALS paper code feeds `implicit` the matrix 5 * bm25(B = 0.9)
        itself, and `implicit` reads that matrix as the confidence c)."""
        c = self.cfg
        r = torch.ones_like(raw) if c["binarize"] else raw
        if c["confidence"] == "bm25":
            # implicit.nearest_neighbours.bm25_weight on the item x user matrix (documents = items,
            # terms = users), as in implicit's lastfm example and the ALS paper code built on it.
            k1, b = float(c["bm25_k1"]), float(c["bm25_b"])
            n_docs = float(self.n_items)
            idf = math.log(n_docs) - torch.log1p(torch.bincount(u, minlength=self.n_users).to(torch.float64))
            row_sums = torch.zeros(self.n_items, dtype=torch.float64, device=r.device).index_add_(0, i, r)
            avg = row_sums.mean().clamp_min(1e-12)
            length_norm = (1.0 - b) + b * row_sums / avg
            r = (r * (k1 + 1.0) / (k1 * length_norm[i] + r) * idf[u]).clamp_min(0.0)
        if c["plus_one"]:
            return float(c["alpha"]) * r
        return float(c["alpha"]) * r - 1.0  # c = alpha f(r) (>= 0, so every solve stays positive definite)

    def _set_cells(self, keys: torch.Tensor, raw: torch.Tensor) -> None:
        self._cells = (keys, raw)
        u, i = keys // self.n_items, keys % self.n_items
        w = self.confidence_weights(u, i, raw).to(self.dtype)
        dev = self.device
        ucrow = torch.zeros(self.n_users + 1, dtype=torch.long, device=dev)
        ucrow[1:] = torch.cumsum(torch.bincount(u, minlength=self.n_users), 0)
        self._by_user = _Side(ucrow, i, w, self.n_users, self.n_items)
        order = torch.sort(i * self.n_users + u).indices
        icrow = torch.zeros(self.n_items + 1, dtype=torch.long, device=dev)
        icrow[1:] = torch.cumsum(torch.bincount(i, minlength=self.n_items), 0)
        self._by_item = _Side(icrow, u[order], w[order], self.n_items, self.n_users)

    @property
    def n_observed(self) -> int:
        return 0 if self._cells is None else len(self._cells[0])

    # -- solves ----------------------------------------------------------------------------
    def _solve(self, side: _Side, target: torch.Tensor, other: torch.Tensor, rows: torch.Tensor | None) -> None:
        """Recompute `target` rows (all when rows is None) from the fixed `other` factors."""
        reg = float(self.cfg["reg"])
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        gram = other.T @ other + reg * eye
        if self.cfg["solver"] == "cg":
            self._solve_cg(side, target, other, gram, rows)
        else:
            self._solve_cholesky(side, target, other, gram, rows)

    def _solve_cholesky(self, side, target, other, gram, rows):
        d = self.dim
        sub = side if rows is None else side.subset(rows)
        b_all = sub.matrix(1.0 + sub.w) @ other  # b = Y_u^T C_u p_u for every row
        out_rows = torch.arange(sub.n_rows, device=self.device) if rows is None else rows
        empty = sub.counts == 0
        if bool(empty.any()):
            target[out_rows[empty]] = 0.0  # nothing observed: x = 0
        padded = torch.cat([other, other.new_zeros(1, d)])  # padding gathers a zero row
        uniform = sub.uniform_weight
        failed = []
        for local, cols, w in sub.plan(d, self._gather_budget, self._batch_cap):
            n_b, length = cols.shape
            yg = torch.index_select(padded, 0, cols.reshape(-1)).view(n_b, length, d)
            if uniform is not None:  # A = G + w Y_u^T Y_u (padding rows are zero)
                a = torch.baddbmm(gram.expand(n_b, d, d), yg.transpose(1, 2), yg, alpha=uniform)
            else:  # A = G + Y_u^T (C_u - I) Y_u
                a = torch.baddbmm(gram.expand(n_b, d, d), (yg * w.unsqueeze(-1)).transpose(1, 2), yg)
            chol, info = torch.linalg.cholesky_ex(a)
            failed.append(info)
            y = torch.linalg.solve_triangular(chol, b_all[local].unsqueeze(-1), upper=False)
            x = torch.linalg.solve_triangular(chol.transpose(1, 2), y, upper=True)
            target[out_rows[local]] = x.squeeze(-1)
        if failed and bool(torch.cat(failed).ne(0).any()):
            # not expected with reg > 0 and c >= 1 (A is then positive definite); redo exactly in float64
            n_bad = int(sum(int(f.ne(0).sum()) for f in failed))
            log.warning(
                "ALS: Cholesky failed on %d of %d %s systems (not positive definite: reg %g); solving them all "
                "again in float64 with a pseudo-inverse, row by row (slow)",
                n_bad,
                sub.n_rows,
                self.dtype,
                float(self.cfg["reg"]),
            )
            self._solve_dense64(sub, target, other, gram, out_rows, b_all)

    def _solve_dense64(self, sub, target, other, gram, out_rows, b_all):
        """Row by row in float64 with a pseudo-inverse: the slow, safe path for singular systems."""
        f = other.double()
        for local in range(sub.n_rows):
            lo, hi = int(sub.crow[local]), int(sub.crow[local + 1])
            if hi == lo:
                continue
            yu = f[sub.col[lo:hi]]
            a = gram.double() + yu.T @ (yu * sub.w[lo:hi].double().unsqueeze(1))
            target[out_rows[local]] = (torch.linalg.pinv(a) @ b_all[local].double()).to(self.dtype)

    def _solve_cg(self, side, target, other, gram, rows):
        sub = side if rows is None else side.subset(rows)
        out_rows = slice(None) if rows is None else rows
        pattern = sub.matrix(sub.w)
        other_t = other.T

        def apply(p):  # A p = G p + Y^T (C - I) (Y p), per row
            q = torch.sparse.sampled_addmm(pattern, p, other_t, beta=0.0).values()
            return p @ gram + sub.matrix(sub.w * q) @ other

        x = target[out_rows].clone()
        # r = b - A x = Y^T (c - (c - 1) q) - G x with q = Y x on the observed cells
        q = torch.sparse.sampled_addmm(pattern, x, other_t, beta=0.0).values()
        r = sub.matrix(1.0 + sub.w - sub.w * q) @ other - x @ gram
        p = r.clone()
        rs = (r * r).sum(1)
        tiny = 1e-20
        live = rs >= tiny
        for _ in range(int(self.cfg["cg_steps"])):
            ap = apply(p)
            denom = (p * ap).sum(1)
            step = torch.where(live & (denom > 0), rs / denom.clamp_min(tiny), torch.zeros_like(rs))
            x += step.unsqueeze(1) * p
            r -= step.unsqueeze(1) * ap
            rs_new = (r * r).sum(1)
            live = live & (rs_new >= tiny)
            p = r + (rs_new / rs.clamp_min(tiny)).unsqueeze(1) * p
            rs = rs_new
        target[out_rows] = x

    # -- the primitives, in the style of `implicit` ---------------------------------------------
    @torch.no_grad()
    def partial_fit_users(self, users=None) -> None:
        """Re-solve the given users' factors (all when None) with the item factors fixed."""
        rows = None if users is None else torch.as_tensor(np.asarray(users), dtype=torch.long, device=self.device)
        self._solve(self._by_user, self.user_factors.data, self.item_factors.data, rows)

    @torch.no_grad()
    def partial_fit_items(self, items=None) -> None:
        """Re-solve the given items' factors (all when None) with the user factors fixed."""
        rows = None if items is None else torch.as_tensor(np.asarray(items), dtype=torch.long, device=self.device)
        self._solve(self._by_item, self.item_factors.data, self.user_factors.data, rows)

    @torch.no_grad()
    def sweep(self) -> float:
        """One ALS iteration (all users, then all items); returns the objective after it."""
        self.partial_fit_users()
        self.partial_fit_items()
        return self.objective()

    @torch.no_grad()
    def objective(self) -> float:
        """The exact training objective over all n_users x n_items cells (no dense matrix)."""
        x, y = self.user_factors.data, self.item_factors.data
        x64, y64 = x.double(), y.double()
        total = float(((x64.T @ x64) * (y64.T @ y64)).sum())
        side = self._by_user
        if len(side.col):
            s = torch.sparse.sampled_addmm(side.matrix(torch.zeros_like(side.w)), x, y.T, beta=0.0).values().double()
            c = 1.0 + side.w.double()
            total += float((c * (1.0 - s) ** 2 - s * s).sum())
        total += float(self.cfg["reg"]) * float((x64 * x64).sum() + (y64 * y64).sum())
        return total

    def reset_parameters(self, gen: torch.Generator) -> None:
        std = float(self.cfg["init_std"])
        with torch.no_grad():
            self.user_factors.copy_(
                (torch.randn(self.user_factors.shape, generator=gen, dtype=torch.float64) * std).to(self.dtype)
            )
            self.item_factors.copy_(
                (torch.randn(self.item_factors.shape, generator=gen, dtype=torch.float64) * std).to(self.dtype)
            )

    def run_sweeps(self, max_sweeps: int, tol: float, start: float | None = None, callback=None) -> list[float]:
        """Sweep until the relative objective change is below `tol` or `max_sweeps` are done.
        `start` is the objective of the current factors (computed when None). Returns the
        objectives after each sweep; `callback(sweep, objective)` runs after each."""
        prev = self.objective() if start is None else float(start)
        trace = []
        for s in range(1, int(max_sweeps) + 1):
            obj = self.sweep()
            trace.append(obj)
            self.history.append(obj)
            if callback is not None:
                callback(s, obj)
            if abs(prev - obj) <= float(tol) * abs(prev):
                break
            prev = obj
        return trace

    def fit(self, data: TrainSet, seed: int) -> dict:
        start = time.perf_counter()
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        self.reset_parameters(gen)
        self.to(self.device)
        t = data.train
        self.observe(t.users, t.items, t.ratings)
        self.history = [self.objective()]
        trace = self.run_sweeps(int(self.cfg["iterations"]), float(self.cfg["tol"]), start=self.history[0])
        self.runtime.sync()
        seconds = time.perf_counter() - start
        valid = float("nan")
        metric = self.cfg.get("valid_metric")
        if metric and len(data.valid):
            k = int(str(metric).split("@")[1])
            ev = RankingEvaluator(
                data.n_users,
                data.n_items,
                data.train,
                data.valid,
                ks=(k,),
                device=self.device,
                batch_size=self.runtime.eval_batch,
            )
            valid = ev.evaluate(self.score, groups=False)[metric]
        # ALS sweeps to its tolerance: no validation-based selection (the last sweep is the model)
        reason = "converged" if len(trace) < int(self.cfg["iterations"]) else "sweep_cap"
        return {
            "epochs": len(trace),
            "best_epoch": len(trace),
            "valid": valid,
            "seconds": seconds,
            "stop_reason": reason,
            "objective": trace[-1] if trace else self.history[-1],
        }

    # -- inference --------------------------------------------------------------------------
    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users] @ self.item_factors.T

    def embeddings(self):
        return self.user_factors.detach(), self.item_factors.detach()

    def set_factors(self, users: torch.Tensor, items: torch.Tensor) -> None:
        with torch.no_grad():
            self.user_factors.copy_(torch.as_tensor(users, dtype=self.dtype))
            self.item_factors.copy_(torch.as_tensor(items, dtype=self.dtype))
