"""Half-sweep solvers of implicit ALS: recompute one side's factors with the other side fixed.

Every row's factor is the closed-form solution of A_u x_u = b_u with
A_u = Y^T Y + Y_u^T (C_u - I) Y_u + reg I and b_u = Y_u^T C_u p_u (the Gram trick: only the row's
observed cells enter the correction). A half-sweep solves all rows (or a given subset) at once:

- `solver: cholesky` (exact): rows are grouped into buckets of similar observed counts and
  padded; per bucket the corrections are one batched matrix product (bmm), followed by a batched
  Cholesky factorisation (`torch.linalg.cholesky_ex`) and two batched triangular solves. The
  bucket size is bounded by `chunk_mb`. Systems the factorisation rejects are solved again in
  float64 with a pseudo-inverse.
- `solver: cg`: `cg_steps` conjugate-gradient steps warm-started from the current factors, as in
  the `implicit` library; each step is one sampled dense-dense product (SDDMM) and one sparse x
  dense product (SpMM) on the observed CSR matrix, never a dense n_users x n_items matrix.

A mixin of `ImplicitALS` (which supplies `cfg`, `dim`, `dtype`, `device` and the bucket bounds
`_gather_budget`, `_batch_cap`), kept apart so the numerics read without the sub-model plumbing.
"""

from __future__ import annotations

import logging

import torch

from .als_cells import Side

log = logging.getLogger(f"{__package__}.als")  # the sub-model's logger, as its warnings have always been named


class ALSSolvers:
    """The half-sweep solves of `ImplicitALS`."""

    def _solve(self, side: Side, target: torch.Tensor, other: torch.Tensor, rows: torch.Tensor | None) -> None:
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
