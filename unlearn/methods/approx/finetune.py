"""Fine-tuning on the retained rows (`finetune`) and what the gradient methods share.

`GradientMethod` (unregistered) holds the steps every gradient method takes: a fresh optimiser
of the sub-model's own configuration (its `lr` times `lr_scale`), the sub-model's own loss and
batches, the model in eval mode (no dropout: the update is on the model that scores), and the
retained rows as an endless stream of the sub-model's shuffled epochs, drawn from the request's
`retain` generator. Two methods that take the same number of retained batches therefore see the
same batches.

`finetune`: warm start from the current parameters, retained rows only. Budgets:

- `rows`: batches of the retained stream until `rows_per_forget` x |F| rows were seen (ERASE's
  retain sample of 16 |F|; whole batches, so the last one may overshoot);
- `epochs`: `epochs` full passes over the retained rows;
- `best_valid`: passes with the sub-model's own early stopping on validation (never test),
  capped by its `epochs`, the best pass's parameters kept: a warm retrain.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import ConfigError
from ...metrics.keys import KEYS
from ...models.wmf import WMF
from ...registry import METHODS
from ...runtime import CPU
from ...training import EarlyStopping, make_optimizer
from .base import ApproximateMethod

BUDGETS = ("rows", "epochs", "best_valid")


class GradientMethod(ApproximateMethod):
    """Optimiser steps on the sub-model's own loss; every epoch-trained sub-model is accepted."""

    submodels = None

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        if "lr_scale" in self.cfg and not float(self.cfg["lr_scale"]) > 0:
            raise ConfigError(f"method.lr_scale must be > 0 (got {self.cfg['lr_scale']}).")

    def optimizer(self, lr_scale: float = 1.0) -> torch.optim.Optimizer:
        """A fresh optimiser of the sub-model's configuration, its lr times `lr_scale`."""
        cfg = {**self.model.cfg, "lr": float(self.model.cfg["lr"]) * float(lr_scale)}
        return make_optimizer(self.model.trainable_parameters(), cfg)

    def batch_rows(self, batch: tuple) -> int:
        """Training rows in a batch (WMF batches users: its rows are the batch's items)."""
        return len(batch[2]) if isinstance(self.model, WMF) else len(batch[0])

    def retained_stream(self, gen: torch.Generator):
        """The sub-model's epochs over the retained rows, one after another, without end."""
        while True:
            empty = True
            for batch in self.model.batches(gen):
                empty = False
                yield batch
            if empty:
                return

    def step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, after_backward=None) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()

    def descend_rows(self, opt: torch.optim.Optimizer, n_rows: int, after_backward=None) -> dict:
        """Steps on batches of the retained stream until `n_rows` rows were seen."""
        seen = steps = 0
        stream = self.retained_stream(self.generator("retain"))
        while seen < n_rows:
            batch = next(stream, None)
            if batch is None:
                break
            self.step(opt, self.model.loss(batch), after_backward)
            seen += self.batch_rows(batch)
            steps += 1
        return {"steps": steps, "rows_touched": seen}

    def descend_epochs(self, opt: torch.optim.Optimizer, n_epochs: int) -> dict:
        gen = self.generator("retain")
        seen = steps = 0
        for _ in range(int(n_epochs)):
            for batch in self.model.batches(gen):
                self.step(opt, self.model.loss(batch))
                seen += self.batch_rows(batch)
                steps += 1
        return {"steps": steps, "rows_touched": seen, "epochs": int(n_epochs)}

    def descend_best_valid(self, opt: torch.optim.Optimizer) -> dict:
        """Passes with the sub-model's early stopping on validation; the best pass is kept."""
        m = self.model
        gen = self.generator("retain")
        stopper = EarlyStopping(self.data, m.cfg, self.runtime)
        seen = steps = 0
        for epoch in range(1, int(m.cfg["epochs"]) + 1):
            for batch in m.batches(gen):
                self.step(opt, m.loss(batch))
                seen += self.batch_rows(batch)
                steps += 1
            m.eval()  # LightGCN: scores propagate the parameters as they now are
            if stopper.step(epoch, m.score, m):
                break
        stopper.restore(m)
        return {
            "steps": steps,
            "rows_touched": seen,
            "epochs": stopper.epochs,
            "best_epoch": stopper.best_epoch or stopper.epochs,
        }


@METHODS.register("finetune")
class FineTune(GradientMethod):
    """Warm start, a fresh optimiser, the retained rows only (see the module docstring)."""

    defaults = {"budget": "rows", "rows_per_forget": 16, "epochs": 1, "lr_scale": 1.0}

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        if self.cfg["budget"] not in BUDGETS:
            raise ConfigError(f"Unknown method.budget '{self.cfg['budget']}'. Valid: {', '.join(BUDGETS)}.")
        if not float(self.cfg["rows_per_forget"]) > 0:
            raise ConfigError(f"method.rows_per_forget must be > 0 (got {self.cfg['rows_per_forget']}).")
        if int(self.cfg["epochs"]) < 1:
            raise ConfigError(f"method.epochs must be >= 1 (got {self.cfg['epochs']}).")

    def update(self, rows: np.ndarray) -> dict:
        opt = self.optimizer(self.cfg["lr_scale"])
        budget = self.cfg["budget"]
        if budget == "rows":
            return self.descend_rows(opt, math.ceil(float(self.cfg["rows_per_forget"]) * len(rows)))
        if budget == "epochs":
            return self.descend_epochs(opt, int(self.cfg["epochs"]))
        return self.descend_best_valid(opt)


KEYS.declare(
    "unlearn.best_epoch.per_request",
    "best epoch",
    sub="per request",
    group="other",
    doc="the fine-tuning pass whose parameters validation kept, per request",
)
