"""Hessian-vector products by double backprop, and the damping they are taken with.

`HessianOperator(f, x0)` differentiates f once at x0 with the graph kept (`create_graph`), so each
product H v is one more backward pass through that gradient, never a second forward. Calling the
operator gives (H + lambda I) v with the damping set on it; `hvps` counts the products.
"""

from __future__ import annotations

import torch


class HessianOperator:
    def __init__(self, f, x0: torch.Tensor):
        self.x = x0.detach().clone().requires_grad_(True)
        value = f(self.x)
        (grad,) = torch.autograd.grad(value, self.x, create_graph=True, allow_unused=True)
        self._grad = torch.zeros_like(self.x) if grad is None else grad
        self.gradient = self._grad.detach()
        self.damping = 0.0
        self.hvps = 0

    @property
    def n(self) -> int:
        return self.x.numel()

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H v (no damping)."""
        self.hvps += 1
        if not self._grad.requires_grad:  # f is at most linear in x
            return torch.zeros_like(v)
        (h,) = torch.autograd.grad(self._grad, self.x, v, retain_graph=True, allow_unused=True)
        return torch.zeros_like(v) if h is None else h.detach()

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        out = self.hvp(v)
        return out + self.damping * v if self.damping else out

    def row_blocks(self, rows: int, dim: int) -> torch.Tensor:
        """(rows, dim, dim): the diagonal blocks of H when x is `rows` vectors of size `dim` whose
        Hessian is block-diagonal (users with items fixed): `dim` products, one per coordinate,
        probing every row at once."""
        out = torch.empty(rows, dim, dim, dtype=self.x.dtype, device=self.x.device)
        probe = torch.zeros(rows, dim, dtype=self.x.dtype, device=self.x.device)
        for k in range(dim):  # one product a coordinate (batching them through vmap is slower on CPU)
            probe.zero_()
            probe[:, k] = 1.0
            out[:, :, k] = self.hvp(probe.reshape(-1)).view(rows, dim)
        return 0.5 * (out + out.transpose(1, 2))

    def mean_diagonal(self, probes: int, gen: torch.Generator) -> float:
        """Hutchinson's estimate of mean(diag H): the mean of z^T H z / n over Rademacher z."""
        total = 0.0
        for _ in range(probes):
            z = torch.randint(0, 2, (self.n,), generator=gen).to(self.x) * 2 - 1
            total += float(z @ self.hvp(z))
        return total / (probes * self.n) if probes else 0.0
