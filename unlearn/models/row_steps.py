"""Optimiser steps on the rows that can move: the optimiser's own step over both embedding tables,
computed on fewer rows (CPU, compiled loops in `analytic_cpu`), after the closed-form gradient of
`analytic.DotProductGrads` has been written.

- Adagrad without weight decay or lr decay (RecEraser's released presets): a row whose gradient is
  zero does not move (its sum gains 0, its update is 0), so the step runs on the batch's rows.
- Adam without weight decay or amsgrad (the class presets and the tuned ones): a row moves at every
  step once it has been in a batch of this fit (its moments decay), and never before (zero moments
  give a zero update), so the step runs on the rows any batch of the fit has held. In a shard of
  a user partition those are its own users (a tenth of the table) and the items they rated; once
  every row has been held (a full retrain, after about an epoch) it is torch's own fused step.

Both reproduce the arithmetic of torch's fused CPU kernels, the fused multiply-adds included, so
they give the dense step's bits on this machine (checked over many steps; elsewhere a compiler
may contract differently, which the tests bound to 1e-6). An optimiser that fits neither case,
or a table off the CPU, takes `opt.step()`.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class RowStep:
    """One optimiser's step restricted to rows; `eligible` says whether that is its dense step."""

    def __init__(self, opt: torch.optim.Optimizer, tables: tuple[torch.Tensor, ...]):
        self.opt, self.tables = opt, tables

    @staticmethod
    def eligible(opt: torch.optim.Optimizer) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, grads: tuple[torch.Tensor, ...], batch_rows: tuple[np.ndarray, ...]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract


def _one_plain_group(opt: torch.optim.Optimizer) -> dict | None:
    if len(opt.param_groups) != 1:
        return None
    g = opt.param_groups[0]
    if isinstance(g["lr"], torch.Tensor) or g.get("maximize") or g.get("capturable") or g.get("differentiable"):
        return None
    return g


class AdagradRows(RowStep):
    """s += g * g; p -= lr * g / (sqrt(s) + eps), on the batch's distinct rows."""

    def __init__(self, opt, tables):
        super().__init__(opt, tables)
        self.marks = tuple(np.zeros(len(t), np.bool_) for t in tables)

    @staticmethod
    def eligible(opt):
        g = _one_plain_group(opt)
        return g is not None and g["weight_decay"] == 0 and g["lr_decay"] == 0

    def step(self, grads, batch_rows):
        from . import analytic_cpu

        group = self.opt.param_groups[0]
        lr, eps = np.float32(group["lr"]), np.float32(group["eps"])
        for table, grad, rows, mark in zip(self.tables, grads, batch_rows, self.marks):
            state = self.opt.state[table]
            analytic_cpu.adagrad_rows(table.detach().numpy(), state["sum"].numpy(), grad.numpy(), rows, mark, lr, eps)
            state["step"] += 1  # as torch's step counts (it feeds lr_decay only, which is 0 here)


class AdamRows(RowStep):
    """Adam (torch's fused arithmetic) on every row some batch of this fit has held."""

    def __init__(self, opt, tables):
        super().__init__(opt, tables)
        self.held = [np.zeros(len(t), np.bool_) for t in tables]  # per table: has a batch held the row?
        self.rows = [np.zeros(0, np.int64) for _ in tables]  # ... and those rows, ascending
        self.everywhere = False  # has every row of every table been held?

    @staticmethod
    def eligible(opt):
        g = _one_plain_group(opt)
        return (
            g is not None and g["weight_decay"] == 0 and not g["amsgrad"] and not g.get("decoupled_weight_decay", False)
        )

    def step(self, grads, batch_rows):
        from . import analytic_cpu

        group = self.opt.param_groups[0]
        beta1, beta2 = group["betas"]
        if self.everywhere:  # every row moves now: torch's own fused step is that step, without our
            self.opt.step()  # per-step bookkeeping (same bits; a full retrain gets here after an epoch)
            return
        for k, (held, batch) in enumerate(zip(self.held, batch_rows)):
            fresh = batch[~held[batch]]
            if len(fresh):
                held[fresh] = True
                self.rows[k] = np.flatnonzero(held)
        self.everywhere = all(len(r) == len(t) for r, t in zip(self.rows, self.tables))
        for table, grad, idx in zip(self.tables, grads, self.rows):
            state = self.opt.state[table]
            if not state:  # torch's lazy initialisation (Adam._init_group)
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(table, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(table, memory_format=torch.preserve_format)
            state["step"] += 1
            t = float(state["step"])
            # the fused kernel's constants: computed in double, applied in float32
            step_size = group["lr"] / (1 - beta1**t)
            analytic_cpu.adam_rows(
                table.detach().numpy(),
                state["exp_avg"].numpy(),
                state["exp_avg_sq"].numpy(),
                grad.numpy(),
                idx,
                np.float32(1 - beta1),
                np.float32(beta2),
                np.float32(1 - beta2),
                np.float32(-step_size),
                np.float32(math.sqrt(1 - beta2**t)),
                np.float32(group["eps"]),
            )


ROW_STEPS: dict[type, type[RowStep]] = {torch.optim.Adagrad: AdagradRows, torch.optim.Adam: AdamRows}


def row_step(opt: torch.optim.Optimizer, tables: tuple[torch.Tensor, ...]) -> RowStep | None:
    """The row-restricted step of `opt` over `tables`, or None where only the dense step is right."""
    cls = ROW_STEPS.get(type(opt))
    return cls(opt, tables) if cls is not None and cls.eligible(opt) else None
