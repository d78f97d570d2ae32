"""Closed-form gradients for the dot-product losses of matrix factorisation (bpr, bce, mse).

Each of these losses reads, for every row b of a batch, one user vector u_b and K item vectors
v_bk (the positive and its sampled negatives), through the scores s_bk = u_b . v_bk only, plus
the L2 term reg * (sum ||u_b||^2 + sum ||v_bk||^2) / (2 B). With g = dL/ds (a B x K array that
the sub-model writes in closed form), the chain rule is

    dL/du_b  = sum_k g_bk v_bk + (reg / B) u_b
    dL/dv_bk = g_bk u_b       + (reg / B) v_bk

scattered into the tables. This is the gradient autograd computes (tested to float rounding),
without its graph. On CPU two compiled loops (`analytic_cpu`, numba) read each gathered row once
and write straight into the gradient tables, zeroing only the rows the previous batch wrote;
elsewhere (CUDA) the same arithmetic runs as torch operations with `index_add_`.

Measured side by side with autograd (`benchmarks.perf.bpr_vs_implicit`, Adam, batch 1024, the
same test NDCG@20 after the same epochs): a BPR epoch on ML-1M (`ml1m_cure4rec`, dim 64, 2 threads)
1.10 s against 2.69 s; on ML-100K with the tuned preset (dim 128, 1 thread, as `make bench` runs
it) 0.113 s against 0.400 s. What was left then was mostly the dense Adam step over both tables,
which `step` now restricts to the rows that can move (below).

`step(opt)` takes the optimiser's step, on CPU restricted to the rows that can move where that
is the same step (`row_steps`: Adagrad on the batch's rows).
"""

from __future__ import annotations

import numpy as np
import torch

from .row_steps import AdagradRows, RowStep, row_step

# batches per compiled call of a whole epoch (`bpr_adagrad_epoch`): bounds the dropout masks drawn
# at once (64 x 256 rows x 64 dims: 4 MiB) while Python is entered a few times an epoch
EPOCH_CHUNK_BATCHES = 64


class DotProductGrads:
    """Reusable dense gradient buffers for (user table, item table) and the step that fills them.

    Untouched rows get a zero gradient, as autograd's dense embedding gradient gives them, so the
    optimiser's step (Adam's moment decay included) is the one it takes after `backward()`."""

    def __init__(self, user_emb: torch.nn.Parameter, item_emb: torch.nn.Parameter):
        self.user_emb, self.item_emb = user_emb, item_emb
        self.user_grad = torch.zeros_like(user_emb)
        self.item_grad = torch.zeros_like(item_emb)
        # CPU float32 tables take the compiled loops (analytic_cpu); other devices the torch form
        self.compiled = user_emb.device.type == "cpu" and user_emb.dtype == torch.float32
        self._stale = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # rows the last compiled step wrote
        self._row_step: RowStep | None = None  # the row-restricted step of the optimiser last seen
        self._row_step_of: torch.optim.Optimizer | None = None
        self.row_sparse_steps = True  # False: always the optimiser's dense step (benchmarks compare the two)
        self.epoch_kernels = True  # False: batch by batch even where a whole epoch can run compiled

    @torch.no_grad()
    def fill(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        score_grad,
        reg: float,
        keep: torch.Tensor | None = None,
        p: float = 0.0,
    ) -> None:
        """Set `.grad` of both tables for a batch: `users` (B,), `items` (B, K), `score_grad(s)`
        -> dL/ds for the (B, K) scores; `keep` the user vectors' dropout mask (B, d) at drop
        probability `p` (each kept entry scaled by 1 / (1 - p)), or None."""
        c = float(reg) / len(users)
        if self.compiled:
            self._fill_compiled(users, items, score_grad, c, keep, p)
        else:
            self._fill_torch(users, items, score_grad, c, keep, p)  # zeroes the whole buffers
        self.user_emb.grad, self.item_emb.grad = self.user_grad, self.item_grad

    def _fill_compiled(self, users, items, score_grad, c, keep, p):
        from . import analytic_cpu

        U, I = self.user_emb.detach().numpy(), self.item_emb.detach().numpy()
        users_np, items_np = users.numpy(), items.reshape(-1).numpy()
        keep_np = np.zeros((0, 0), dtype=np.float32) if keep is None else keep.to(torch.float32).numpy()
        scale = 1.0 if keep is None else 1.0 / (1.0 - p)
        s = torch.empty(items.shape, dtype=torch.float32)
        slots = items_np.reshape(items.shape)
        analytic_cpu.scores(U, I, users_np, slots, keep_np, scale, s.numpy())
        g = score_grad(s).to(torch.float32).contiguous()
        analytic_cpu.scatter(
            U,
            I,
            users_np,
            slots,
            g.numpy(),
            c,
            keep_np,
            scale,
            self.user_grad.numpy(),
            self.item_grad.numpy(),
            *self._stale,
        )
        self._stale = (users_np.copy(), items_np.copy())

    def _bind(self, opt: torch.optim.Optimizer) -> None:
        if self._row_step_of is not opt:  # a new fit (or optimiser): its own row bookkeeping
            self._row_step_of, self._row_step = opt, row_step(opt, (self.user_emb, self.item_emb))

    def step(self, opt: torch.optim.Optimizer) -> None:
        """The optimiser's step after `fill`: on the rows that can move where that is the dense
        step (`row_steps`), else `opt.step()`."""
        if self.compiled and self.row_sparse_steps:
            self._bind(opt)
            if self._row_step is not None:
                self._row_step.step((self.user_grad, self.item_grad), self._stale)
                return
        opt.step()

    def adagrad_epoch_ready(self, opt: torch.optim.Optimizer) -> bool:
        """Whether `bpr_adagrad_epoch` can run this optimiser's epoch: compiled CPU tables with
        Adagrad's row step (no weight decay, no lr decay)."""
        if not (self.compiled and self.row_sparse_steps and self.epoch_kernels):
            return False
        self._bind(opt)
        return isinstance(self._row_step, AdagradRows)

    @torch.no_grad()
    def bpr_adagrad_epoch(
        self,
        opt: torch.optim.Optimizer,
        users: torch.Tensor,
        slots: torch.Tensor,
        reg: float,
        batch: int,
        uniforms,
        p: float,
    ) -> None:
        """A whole BPR epoch with Adagrad's row step in compiled loops (`analytic_cpu.bpr_adagrad_batches`):
        `users` (N,) and `slots` (N, 2: positive, negative) in the epoch's order, cut into batches
        of `batch`; `uniforms(n)` draws the next n rows' dropout uniforms ((n, d) float32, kept
        where >= p; or (0, 0) with p = 0) from the fit's generator, as the per-batch step draws its
        masks (thresholded in the loop: 0.26 s of a 0.85 s ML-1M epoch was the mask's compare and
        float conversion in torch). Every batch is the per-batch step (`fill`, `step`) but for
        dL/ds, whose sigmoid is libm's (`bpr_score_grad`), so the fit is the per-batch one to float
        rounding; it stays a deterministic function of the seed and data. ML-1M with
        `bpr_receraser` (batch 256): see `benchmarks.perf.bpr_vs_implicit`."""
        from . import analytic_cpu

        group = opt.param_groups[0]
        lr, eps = np.float32(group["lr"]), np.float32(group["eps"])
        row = self._row_step
        sums = [opt.state[t]["sum"].numpy() for t in (self.user_emb, self.item_emb)]
        U, I = self.user_emb.detach().numpy(), self.item_emb.detach().numpy()
        users_np = users.numpy()
        slots_np = np.ascontiguousarray(slots.numpy())
        items_flat = slots_np.reshape(-1)
        scale = 1.0 if p <= 0 else 1.0 / (1.0 - p)
        s_buf, g_buf = np.empty((batch, 2), np.float32), np.empty((batch, 2), np.float32)
        keep_buf = np.empty((batch, U.shape[1]), np.float32)
        stale, total, n = self._stale, 0, len(users_np)
        for start in range(0, n, EPOCH_CHUNK_BATCHES * batch):
            end = min(start + EPOCH_CHUNK_BATCHES * batch, n)
            nb = analytic_cpu.bpr_adagrad_batches(
                U,
                I,
                users_np[start:end],
                slots_np[start:end],
                items_flat[2 * start : 2 * end],
                uniforms(end - start),
                np.float32(p),
                scale,
                batch,
                float(reg),
                lr,
                eps,
                self.user_grad.numpy(),
                self.item_grad.numpy(),
                *sums,
                *row.marks,
                *stale,
                s_buf,
                g_buf,
                keep_buf,
            )
            last = start + (nb - 1) * batch
            stale = (users_np[last:end], items_flat[2 * last : 2 * end])
            total += nb
        self._stale = (stale[0].copy(), stale[1].copy())
        for t in (self.user_emb, self.item_emb):
            opt.state[t]["step"] += total  # as `AdagradRows.step` counts, once a batch
        self.user_emb.grad, self.item_emb.grad = self.user_grad, self.item_grad

    def _fill_torch(self, users, items, score_grad, c, keep, p):
        b, k = items.shape
        u = self.user_emb.index_select(0, users)
        if keep is not None:
            u = u * keep / (1.0 - p)
        flat = items.reshape(-1)
        v = self.item_emb.index_select(0, flat).view(b, k, -1)
        # elementwise products and sums: for K of 1 to 4, 1.1x (scores) and 2.7x (du) faster than
        # the batched matmuls on 2 CPU threads
        s = (v * u.unsqueeze(1)).sum(-1)  # (B, K)
        g = score_grad(s)
        du = (g.unsqueeze(2) * v).sum(1).add_(u, alpha=c)  # (B, d)
        if keep is not None:
            du = du * keep / (1.0 - p)
        dv = (g.unsqueeze(2) * u.unsqueeze(1)).add_(v, alpha=c)  # (B, K, d)
        self.user_grad.zero_().index_add_(0, users, du)
        self.item_grad.zero_().index_add_(0, flat, dv.view(b * k, -1))
