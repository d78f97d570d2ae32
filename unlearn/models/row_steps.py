"""Optimiser steps on the rows that can move: the optimiser's own step over both embedding tables,
computed on fewer rows (CPU, compiled loops in `analytic_cpu`), after the closed-form gradient of
`analytic.DotProductGrads` has been written.

Adagrad without weight decay or lr decay (RecEraser's released presets): a row whose gradient is
zero does not move (its sum gains 0, its update is 0), so the step runs on the batch's rows. It
reproduces the arithmetic of torch's fused CPU kernel, so it gives the dense step's bits on this
machine (elsewhere a compiler may contract differently, which the tests bound to 1e-6).

Every other optimiser, Adam included, and a table off the CPU take `opt.step()`. Adam's moments
move every row a batch of the fit has held, so a row-restricted Adam step saves only on the rows
no batch has held yet (a shard's other users); a copy of torch's Adam kernel for that did not pay
for itself (`benchmarks.perf.bpr_vs_implicit --grads analytic analytic-dense --user-share 0.1`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch


class RowStep(ABC):
    """One optimiser's step restricted to rows; `eligible` says whether that is its dense step."""

    def __init__(self, opt: torch.optim.Optimizer, tables: tuple[torch.Tensor, ...]):
        self.opt, self.tables = opt, tables

    @staticmethod
    @abstractmethod
    def eligible(opt: torch.optim.Optimizer) -> bool:
        """Whether the row-restricted step is `opt`'s dense step."""

    @abstractmethod
    def step(self, grads: tuple[torch.Tensor, ...], batch_rows: tuple[np.ndarray, ...]) -> None:
        """The step on the rows that can move (`batch_rows`: the batch's rows per table)."""


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


ROW_STEPS: dict[type, type[RowStep]] = {torch.optim.Adagrad: AdagradRows}


def row_step(opt: torch.optim.Optimizer, tables: tuple[torch.Tensor, ...]) -> RowStep | None:
    """The row-restricted step of `opt` over `tables`, or None where only the dense step is right."""
    cls = ROW_STEPS.get(type(opt))
    return cls(opt, tables) if cls is not None and cls.eligible(opt) else None
