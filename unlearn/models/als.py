"""Implicit ALS (Hu, Koren & Volinsky, ICDM 2008), solved in batches on the device.

Objective over ALL user x item cells:

    L(X, Y) = sum_ui c_ui (p_ui - x_u . y_i)^2 + reg (||X||^2 + ||Y||^2)

with p = 1 and c = 1 + alpha * r on observed cells (r the rating, 1 when binarized, or its BM25
weight; `plus_one: false` drops the 1) and p = 0, c = 1 everywhere else. With the other side fixed, every user's
factor is the closed-form solution of a small linear system; a half-sweep solves all users (then
all items) at once, exactly (`solver: cholesky`) or by warm-started conjugate gradients
(`solver: cg`): see `als_solve`.

The objective is computed exactly with the same trick: sum_all s_ui^2 = <X^T X, Y^T Y> plus the
observed-cell correction sum_obs [c (1 - s)^2 - s^2] (s from an SDDMM), accumulated in float64.

The observed matrix lives on the device as user-major and item-major CSR tensors (`als_cells`), so
cells can be marked unobserved (p = 0, c = 1) for unlearning: `unobserve(users, items)`. After such
a change the objective *is* the objective of training on the remaining cells from scratch.

Conventions: `implicit` (>= 0.5) takes the matrix of confidences C itself and uses c - 1 in the
correction, with its own `alpha` multiplying the matrix; this module's c = 1 + alpha r equals
`implicit` fed with the matrix 1 + alpha r and alpha = 1 (see benchmarks/perf/als_vs_implicit.py).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..fit_report import FitReport
from ..metrics.ranking import RankingEvaluator
from ..registry import SUBMODELS
from ..runtime import CPU
from .als_cells import both_sides, confidence_weights
from .als_solve import ALSSolvers
from .base import SubModel

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@SUBMODELS.register("als")
class ImplicitALS(ALSSolvers, SubModel):
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
        a model trained on exactly these cells would use); see `als_cells.confidence_weights`."""
        return confidence_weights(self.cfg, self.n_users, self.n_items, u, i, raw)

    def _set_cells(self, keys: torch.Tensor, raw: torch.Tensor) -> None:
        self._cells = (keys, raw)
        u, i = keys // self.n_items, keys % self.n_items
        w = self.confidence_weights(u, i, raw).to(self.dtype)
        self._by_user, self._by_item = both_sides(u, i, w, self.n_users, self.n_items, self.device)

    @property
    def n_observed(self) -> int:
        return 0 if self._cells is None else len(self._cells[0])

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

    def fit(self, data: TrainSet, seed: int) -> FitReport:
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
        objective = trace[-1] if trace else self.history[-1]
        return FitReport(len(trace), reason, len(trace), valid, seconds=seconds, extra={"objective": objective})

    # -- inference --------------------------------------------------------------------------
    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users] @ self.item_factors.T

    def embeddings(self):
        return self.user_factors.detach(), self.item_factors.detach()

    def set_factors(self, users: torch.Tensor, items: torch.Tensor) -> None:
        with torch.no_grad():
            self.user_factors.copy_(torch.as_tensor(users, dtype=self.dtype))
            self.item_factors.copy_(torch.as_tensor(items, dtype=self.dtype))
