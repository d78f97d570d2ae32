"""Solvers for (H + lambda I) x = v, each returning x and a health report.

`op(v)` gives (H + lambda I) v. Every iterative solver starts from x = 0, returns the iterate of
least residual it met (x = 0 included: on an indefinite system a later iterate can be further from
solving it than no step at all), and ends with one more product for the true relative residual
|(H + lambda I) x - v| / |v| of what it returns, which the report carries; it `converged` when
that residual is at most `tol`.

- `cg`: conjugate gradients; stops on the recurrence's residual (restarted from the true residual,
  up to REPLACEMENTS times, where that one is still above the tolerance), at `max_iter`, or on a
  direction of non-positive curvature (reported: the system is not positive definite);
- `lissa`: the LiSSA recursion x <- x + (v - (H + lambda I) x) / s (scale s, the damping already in
  the operator). It converges when s exceeds half the top eigenvalue of H + lambda I and diverges
  otherwise; a residual above |v| can only come from divergence, and stops it;
- `adam`: IFRU's solver, Adam on 1/2 x^T (H + lambda I) x - v^T x (its gradient is minus the
  residual), stopped on the residual instead of the released validation AUC;
- `direct`: a Cholesky solve per d x d block (the users block of a block-diagonal Hessian); a
  block that is not positive definite is solved by LU and reported as negative curvature.

`escalate` and `direct`'s `retries` raise the damping where a system is not positive definite: the
Hessian of an early-stopped fit is indefinite, and the least-residual iterate of CG on it is often
no step at all. Each retry multiplies the damping by `growth` and solves again from x = 0, within
the one `max_iter` budget; the report then says negative curvature was met, how many retries it
took, and whether the last, damped system converged. With large damping the step tends to the
gradient step v / lambda.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

SOLVERS = ("direct", "cg", "lissa", "adam")
REPLACEMENTS = 2  # cg: restarts from the true residual where the recurrence's met the tolerance


@dataclass
class SolveReport:
    solver: str
    iterations: int = 0
    residual: float = 0.0
    converged: bool = True
    negative_curvature: bool = False
    diverged: bool = False
    damping: float = 0.0  # the absolute damping of the system the returned x solves
    damping_retries: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def _finish(
    op, x: torch.Tensor, v: torch.Tensor, report: SolveReport, tol: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, SolveReport]:
    """The report's true relative residual of `x` (`residual`: v - op(x) where already computed)."""
    vnorm = _norm(v)
    report.residual = _norm(op(x) - v if residual is None else residual) / vnorm
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
    checked = None  # the true residual of `best`, once computed
    for _ in range(1 + REPLACEMENTS):
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
        if report.negative_curvature or report.iterations >= max_iter:
            break
        # the recurrence's residual drifts from the true one: restart from the true residual if
        # that one is still above the tolerance
        x = best.clone()
        r = v - op(x)
        rs = float(r @ r)
        if rs**0.5 <= tol * vnorm:
            checked = r
            break
        p = r.clone()
        best, best_rs = x.clone(), rs
    return _finish(op, best, v, report, tol, checked)


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


def direct(
    blocks: torch.Tensor, v: torch.Tensor, damping: float = 0.0, growth: float = 10.0, retries: int = 0
) -> tuple[torch.Tensor, SolveReport]:
    """x_b = (H_b + lambda_b I)^-1 v_b for every block b (blocks: (n, d, d), v: (n, d)). lambda_b starts
    at `damping`; a block that is not positive definite takes it times `growth`, up to `retries`
    times (the blocks are independent systems), and is solved by LU if it still is not."""
    report = SolveReport("direct", damping=damping)
    if v.numel() == 0:
        return torch.zeros_like(v), report
    n, d = v.shape
    eye = torch.eye(d, dtype=blocks.dtype, device=blocks.device)
    lam = torch.full((n,), float(damping), dtype=blocks.dtype, device=blocks.device)
    a = blocks + lam[:, None, None] * eye
    chol, info = torch.linalg.cholesky_ex(a)
    bad = info != 0
    report.negative_curvature = bool(bad.any())
    while bool(bad.any()) and damping > 0 and report.damping_retries < retries:
        report.damping_retries += 1
        lam[bad] *= growth
        a[bad] = blocks[bad] + lam[bad][:, None, None] * eye
        chol[bad], info[bad] = torch.linalg.cholesky_ex(a[bad])
        bad = info != 0
    x = torch.cholesky_solve(v.unsqueeze(-1), chol).squeeze(-1)
    if bool(bad.any()):
        x[bad] = torch.linalg.solve(a[bad], v[bad])
    report.damping = float(lam.max())
    vnorm = _norm(v)
    report.residual = _norm(torch.bmm(a, x.unsqueeze(-1)).squeeze(-1) - v) / vnorm if vnorm else 0.0
    report.converged = bool(torch.isfinite(x).all()) and not bool(bad.any())
    return x, report


ITERATIVE = {"cg": cg, "lissa": lissa, "adam": adam}


def escalate(
    solver: str,
    op,
    v: torch.Tensor,
    damping: float,
    max_iter: int,
    growth: float = 10.0,
    retries: int = 0,
    **options,
) -> tuple[torch.Tensor, SolveReport]:
    """An iterative `solver` on (H + damping I) x = v (`op.damping` is set here), solved again with
    the damping times `growth` while it meets negative curvature or diverges, up to `retries`
    times and `max_iter` iterations in all. A damping of 0 is never raised (an exact solve asked
    for). The report sums the iterations and says whether any attempt met negative curvature."""
    solve = ITERATIVE[solver]
    lam, used, retried, seen = float(damping), 0, 0, False
    while True:
        op.damping = lam
        x, report = solve(op, v, max_iter=max_iter - used, **options)
        used += report.iterations
        seen = seen or report.negative_curvature
        trouble = report.negative_curvature or report.diverged
        if not trouble or lam == 0.0 or retried >= retries or used >= max_iter:
            break
        lam *= growth
        retried += 1
    report.iterations, report.negative_curvature = used, seen
    report.damping, report.damping_retries = lam, retried
    return x, report
