"""One influence step on a sub-model: pick the block, build the objectives, solve, move.

Forms (J in sum form, so J_D - J_R is the forget rows' own loss; `objective`):

- `removal` (the papers'): x_S <- x_S + (H_D,SS + lambda I)^-1 v, v = grad_S J_D - grad_S J_R at the
  current parameters, which for a loss that sums over rows is sum_F grad l. With the mean loss the
  released code writes this as theta + (1/n) H_mean^-1 sum_F grad l: the same step. On LightGCN
  the graph changes too, so v = sum_F grad l(A) + sum_C [grad l(A) - grad l(A')] over the retained
  rows C of the nodes whose degree fell by more than `spillover` (IFRU's term; `spillover: 0`
  takes every retained row, which makes v exactly grad J_D(A) - grad J_R(A'));
- `newton_retained`: x_S <- x_S - (H_R,SS + lambda I)^-1 grad_S J_R, one Newton step on the
  retraining objective from the current parameters. It keeps M0's distance from a stationary
  point (M0 is early-stopped) and is exact where J_R is quadratic in the block (ALS, mse).

Damping lambda = `damping` x the mean diagonal of the block's Hessian (exact for a block-diagonal
users block; otherwise Hutchinson's estimate from `damping_probes` Rademacher probes, by its
magnitude, since on an indefinite block the estimate can be negative), recorded as its absolute
value. Where the damped block is still not positive definite (the Hessian of an early-stopped
fit is indefinite), the damping is raised `damping_growth` times, up to `damping_retries` times,
and the solve repeated (`solvers.escalate`); the recorded damping is the one the step solved with.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..metrics.timing import clock
from . import solvers
from .blocks import BLOCKS, Block, select
from .config import FORMS, InfluenceConfig, empty_report
from .hvp import HessianOperator
from .objective import (
    Objective,
    Rows,
    adjacency_of,
    als_cells,
    tables,
)
from .request_rows import request_rows, spillover_nodes


class InfluenceStep:
    """Applies one influence step to `model` (its tables, in place) for one request.

    `train` is the training rows (`TrainSet.rows`), `kept_before` the mask of the rows retained
    before the request, `forget` the request's rows. `gen` draws the request's negatives (and the
    damping's probes). `reinit(users)`, where given, returns the rows the fit drew for users who
    lost every row; those users then leave the block and take those rows."""

    def __init__(self, model, kind: str, cfg: InfluenceConfig, sync=None):
        self.model, self.kind, self.cfg = model, kind, cfg
        self.solver = cfg.solver_for(kind)
        self.sync = sync or (lambda: None)
        self._graphs: dict = {}  # LightGCN adjacencies by row set (a request's R is the next one's D)

    def __call__(self, train, kept_before: np.ndarray, forget: np.ndarray, gen: torch.Generator, reinit=None) -> dict:
        forget = np.unique(np.asarray(forget, dtype=np.int64))
        if len(forget) == 0:
            return empty_report()
        m, cfg = self.model, self.cfg
        m.eval()
        device = tables(m)[0].device
        kept_after = kept_before.copy()
        kept_after[forget] = False
        before_ids = np.flatnonzero(kept_before)
        f_users = train.users[forget]
        left = np.bincount(train.users[kept_after], minlength=m.n_users)
        gone = np.unique(f_users[left[f_users] == 0])  # users who lost every row
        users, items = select(
            cfg.block,
            f_users,
            train.items[forget],
            train.users[before_ids],
            train.items[before_ids],
            m.n_users,
            m.n_items,
            cfg.hops,
        )
        if reinit is not None:
            users = np.setdiff1d(users, gone)
        block = Block(
            torch.as_tensor(users, device=device), torch.as_tensor(items, device=device), tables(m)[0].shape[1]
        )
        report = empty_report()
        if block.size:
            report.update(self._solve(train, before_ids, kept_after, forget, block, gen))
        if reinit is not None and len(gone):
            with torch.no_grad():
                user_table = tables(m)[0]
                idx = torch.as_tensor(gone, device=device)
                user_table[idx] = reinit(idx).to(user_table)
            report["params_touched"] += len(gone) * block.dim
        report.update(block_users=len(users), block_items=len(items), reinit_users=len(gone) if reinit else 0)
        return report

    # -- the objectives --------------------------------------------------------------------------
    def _needs_graph(self) -> bool:
        """Whether J depends on its whole row set beyond the rows it sums over."""
        c = self.model.cfg
        return (
            self.kind == "lightgcn"
            or (self.kind == "wmf" and c["gram_items"] == "shard")
            or (self.kind == "als" and c["confidence"] == "bm25")
        )

    def _rows(self, train, before_ids, kept_after, forget, block: Block, gen: torch.Generator):
        return request_rows(
            self.model, self.kind, train, before_ids, kept_after, forget, block, gen, self._needs_graph()
        )

    def _adjacency(self, rows: Rows) -> torch.Tensor:
        key = hashlib.blake2b(np.ascontiguousarray(rows.ids).tobytes(), digest_size=16).hexdigest()
        if key not in self._graphs:
            if len(self._graphs) >= 2:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = adjacency_of(self.model, rows)
        return self._graphs[key]

    def _objective(self, rows: Rows, block: Block, graph: Rows | None, local=None) -> Objective:
        """J on `rows`; `graph` is the row set J is of (LightGCN's adjacency, wmf's item set, ALS's
        bm25 weights), None where J reads no more than `rows`; `local`: the rows are relabelled
        for tables cut down to these (users, items) ids."""
        users_only = block.users if (self.kind == "als" and len(block.items) == 0) else None
        cells = None
        if self.kind == "als":
            cells = als_cells(self.model, graph if graph is not None else rows)
            if local is not None:
                if graph is not None:  # the graph's cells carry global user ids: keep the block's, relabelled
                    u, i, w = cells
                    keep = torch.isin(u, local[0])
                    cells = (torch.searchsorted(local[0], u[keep]), i[keep], w[keep])
                users_only = None  # the cut-down table holds exactly the block's users
        adj = self._adjacency(graph) if self.kind == "lightgcn" else None
        return Objective(
            self.model,
            self.kind,
            rows,
            graph=graph,
            users_only=users_only,
            als_weights=cells,
            adjacency=adj,
            n_users=None if local is None else len(local[0]),
        )

    def _solve(self, train, before_ids, kept_after, forget, block: Block, gen: torch.Generator) -> dict:
        self.sync()
        t0 = clock()
        op, rhs, sign, rows_touched = self._system(train, before_ids, kept_after, forget, block, gen)
        lam, blocks = self._damping(op, block, gen)
        self.sync()
        t1 = clock()
        x, rep = self._run_solver(op, rhs, lam, blocks)
        step = sign * x
        if bool(torch.isfinite(step).all()):
            block.add_(step, *tables(self.model))
        else:
            rep.converged = False
        self.sync()
        t2 = clock()
        return {
            "hvps": op.hvps,
            "solver_iters": rep.iterations,
            "residual": rep.residual,
            "converged": rep.converged,
            "negative_curvature": rep.negative_curvature,
            "diverged": rep.diverged,
            "rows_touched": rows_touched,
            "params_touched": block.size,
            "damping": rep.damping,
            "damping_retries": rep.damping_retries,
            "step_norm": float(torch.linalg.vector_norm(step)),
            "grad_s": t1 - t0,
            "solve_s": t2 - t1,
        }

    def _system(self, train, before_ids, kept_after, forget, block: Block, gen: torch.Generator):
        """(the Hessian operator of the form's objective at the current block, the right-hand side,
        the sign of the step, the rows the objective reads)."""
        full, after, d_rows, r_rows, local = self._rows(train, before_ids, kept_after, forget, block, gen)
        user_table, item_table = (t.detach() for t in tables(self.model))
        x0 = block.gather(user_table, item_table)
        if local is None:

            def as_fn(objective):
                return lambda x: objective(*block.place(x, user_table, item_table))
        else:  # x is the cut-down user table itself
            items = item_table if local[1] is None else item_table[local[1]]

            def as_fn(objective):
                return lambda x: objective(x.view(-1, block.dim), items)

        j_r = self._objective(r_rows, block, after, local)
        if self.cfg.form == "newton_retained":
            op = HessianOperator(as_fn(j_r), x0)
            return op, op.gradient, -1.0, len(r_rows)
        op = HessianOperator(as_fn(self._objective(d_rows, block, full, local)), x0)
        rhs = self._removal_rhs(op, j_r, as_fn, x0, full, after, d_rows, forget, block)
        return op, rhs, 1.0, len(d_rows)

    def _damping(self, op: HessianOperator, block: Block, gen: torch.Generator):
        """(the absolute damping, the users' d x d blocks where the solve is `direct`, else None)."""
        cfg = self.cfg
        if self.solver == "direct":
            blocks = op.row_blocks(len(block.users), block.dim)
            mean = float(torch.diagonal(blocks, dim1=1, dim2=2).mean()) if cfg.damping else 0.0
            return float(cfg.damping) * mean, blocks
        if not cfg.damping:
            return 0.0, None
        # Hutchinson's estimate of an indefinite block's mean diagonal can come out negative: its size
        return float(cfg.damping) * abs(op.mean_diagonal(int(cfg.damping_probes), gen)), None

    def _run_solver(self, op: HessianOperator, rhs: torch.Tensor, lam: float, blocks):
        cfg = self.cfg
        retry = {"growth": float(cfg.damping_growth), "retries": int(cfg.damping_retries)}
        if blocks is not None:
            x, rep = solvers.direct(blocks, rhs.view(blocks.shape[0], -1), lam, **retry)
            return x.reshape(-1), rep
        options = {"tol": float(cfg.tol)}
        if self.solver == "lissa":
            options["scale"] = float(cfg.lissa_scale)
        elif self.solver == "adam":
            options["lr"] = float(cfg.adam_lr)
        return solvers.escalate(self.solver, op, rhs, lam, int(cfg.max_iter), **retry, **options)

    def _removal_rhs(
        self,
        op: HessianOperator,
        j_r,
        as_fn,
        x0,
        full: Rows,
        after: Rows,
        d_rows: Rows,
        forget: np.ndarray,
        block: Block,
    ) -> torch.Tensor:
        """v = grad J_D - grad J_R over the objectives' rows; on LightGCN, IFRU's v with its
        spillover rows."""
        if self.kind != "lightgcn" or float(self.cfg.spillover) == 0.0:
            return op.gradient - _gradient(as_fn(j_r), x0)
        m = self.model
        dev = d_rows.users.device
        f_rows = d_rows.subset(torch.as_tensor(np.isin(d_rows.ids, forget), device=dev))
        cu, ci = spillover_nodes(full, after, f_rows, m.n_users, m.n_items, float(self.cfg.spillover))
        retained = d_rows.without(forget)
        changed = retained.subset(torch.isin(retained.users, cu) | torch.isin(retained.items, ci))
        read = torch.as_tensor(np.isin(d_rows.ids, np.concatenate([f_rows.ids, changed.ids])), device=dev)
        on_d = self._objective(d_rows.subset(read), block, full)
        on_r = self._objective(changed, block, after)
        return _gradient(as_fn(on_d), x0) - _gradient(as_fn(on_r), x0)


def _gradient(f, x0: torch.Tensor) -> torch.Tensor:
    x = x0.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


__all__ = ["BLOCKS", "FORMS", "InfluenceConfig", "InfluenceStep", "empty_report"]
