"""Solvers for (H + lambda I) x = v, each returning x and a health report.

`op(v)` gives (H + lambda I) v. Every iterative solver starts from x = 0, returns the iterate of
least residual it met (x = 0 included: on an indefinite system a later iterate can be further from
solving it than no step at all), and ends with one more product for the true relative residual
|(H + lambda I) x - v| / |v| of what it returns, which the report carries; it `converged` when
that residual is at most `tol`.

- `cg`: conjugate gradients; stops on the recurrence's residual, at `max_iter`, or on a
  direction of non-positive curvature (reported: the system is not positive definite);
- `lissa`: the LiSSA recursion x <- x + (v - (H + lambda I) x) / s (scale s, the damping already in
  the operator). It converges when s exceeds half the top eigenvalue of H + lambda I and diverges
  otherwise; a residual above |v| can only come from divergence, and stops it;
- `adam`: IFRU's solver, Adam on 1/2 x^T (H + lambda I) x - v^T x (its gradient is minus the
  residual), stopped on the residual instead of the released validation AUC;
- `direct`: a Cholesky solve per d x d block (the users block of a block-diagonal Hessian); a
  block that is not positive definite is solved by LU and reported as negative curvature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

SOLVERS = ("direct", "cg", "lissa", "adam")


@dataclass
class SolveReport:
    solver: str
    iterations: int = 0
    residual: float = 0.0
    converged: bool = True
    negative_curvature: bool = False
    diverged: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def _finish(op, x: torch.Tensor, v: torch.Tensor, report: SolveReport, tol: float) -> tuple[torch.Tensor, SolveReport]:
    vnorm = _norm(v)
    report.residual = _norm(op(x) - v) / vnorm
    report.converged = bool(report.residual <= tol and not report.negative_curvature and not report.diverged)
    return x, report


def _zero(v: torch.Tensor, solver: str) -> tuple[torch.Tensor, SolveReport] | None:
    if v.numel() == 0 or _norm(v) == 0.0:
        return torch.zeros_like(v), SolveReport(solver)
    return None


def cg(op, v: torch.Tensor, tol: float = 1e-6, max_iter: int = 100) -> tuple[torch.Tensor, SolveReport]:
    done = _zero(v, "cg")
    if done:
        return done
    report = SolveReport("cg")
    vnorm = _norm(v)
    x = torch.zeros_like(v)
    r = v.clone()
    p = r.clone()
    rs = float(r @ r)
    best, best_rs = x.clone(), rs
    while report.iterations < max_iter and rs**0.5 > tol * vnorm:
        ap = op(p)
        curvature = float(p @ ap)
        if not curvature > 0.0:
            report.negative_curvature = True
            break
        alpha = rs / curvature
        x.add_(p, alpha=alpha)
        r.add_(ap, alpha=-alpha)
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
        report.iterations += 1
        if rs < best_rs:
            best, best_rs = x.clone(), rs
    return _finish(op, best, v, report, tol)


def lissa(
    op, v: torch.Tensor, tol: float = 1e-6, max_iter: int = 100, scale: float = 10.0
) -> tuple[torch.Tensor, SolveReport]:
    done = _zero(v, "lissa")
    if done:
        return done
    report = SolveReport("lissa")
    vnorm = _norm(v)
    x = torch.zeros_like(v)
    r = v.clone()
    best, best_rel = x.clone(), 1.0
    while report.iterations < max_iter:
        x.add_(r, alpha=1.0 / scale)
        report.iterations += 1
        r = v - op(x)
        rel = _norm(r) / vnorm
        if not rel <= 1.0:  # a convergent recursion never lets the residual exceed |v| (nor NaN)
            report.diverged = True
            break
        if rel < best_rel:
            best, best_rel = x.clone(), rel
        if rel <= tol:
            break
    return _finish(op, best, v, report, tol)


def adam(
    op, v: torch.Tensor, tol: float = 1e-6, max_iter: int = 5000, lr: float = 1e-3
) -> tuple[torch.Tensor, SolveReport]:
    done = _zero(v, "adam")
    if done:
        return done
    report = SolveReport("adam")
    vnorm = _norm(v)
    x = torch.zeros_like(v, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    best, best_norm = x.detach().clone(), vnorm
    while report.iterations < max_iter:
        grad = op(x.detach()) - v  # the quadratic's gradient: minus the residual
        norm = _norm(grad)
        if not norm == norm or norm == float("inf"):
            report.diverged = True
            break
        if norm < best_norm:
            best, best_norm = x.detach().clone(), norm
        if norm <= tol * vnorm:
            break
        x.grad = grad
        opt.step()
        report.iterations += 1
    return _finish(op, best, v, report, tol)


def direct(blocks: torch.Tensor, v: torch.Tensor, damping: float = 0.0) -> tuple[torch.Tensor, SolveReport]:
    """x_b = (H_b + damping I)^-1 v_b for every block b (blocks: (n, d, d), v: (n, d))."""
    report = SolveReport("direct")
    if v.numel() == 0:
        return torch.zeros_like(v), report
    n, d = v.shape
    a = blocks + damping * torch.eye(d, dtype=blocks.dtype, device=blocks.device)
    chol, info = torch.linalg.cholesky_ex(a)
    x = torch.cholesky_solve(v.unsqueeze(-1), chol).squeeze(-1)
    bad = info != 0
    if bool(bad.any()):
        report.negative_curvature = True
        x[bad] = torch.linalg.solve(a[bad], v[bad])
    vnorm = _norm(v)
    report.residual = _norm(torch.bmm(a, x.unsqueeze(-1)).squeeze(-1) - v) / vnorm if vnorm else 0.0
    report.converged = bool(torch.isfinite(x).all()) and not report.negative_curvature
    return x, report
