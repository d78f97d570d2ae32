"""NegGrad+ (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Each step descends alpha * L_R - (1 - alpha) * L_F: gradient descent on a batch of retained rows
and ascent on a batch of F's rows, with the sub-model's own loss, regulariser and optimiser (a
fresh one, warm start). `passes` shuffles of F's rows give the F batches, and each is paired with
the next batch of the retained stream that `finetune` reads too, so alpha = 1 is `finetune` over
as many retained batches. On BPR or BCE the ascent term is unbounded below: the fixed number of
passes is the only stop.

F's batches are the sub-model's own batches of F's rows alone (`batches_of`), negatives rejected
against F's and the retained positives; LightGCN propagates them on the retained graph.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...registry import METHODS
from ...runtime import CPU
from .finetune import GradientMethod


@METHODS.register("neggrad_plus")
class NegGradPlus(GradientMethod):
    defaults = {"alpha": 0.95, "passes": 10, "lr_scale": 1.0}

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        if not 0.0 <= float(self.cfg["alpha"]) <= 1.0:
            raise ConfigError(f"method.alpha must lie in [0, 1] (got {self.cfg['alpha']}).")
        if int(self.cfg["passes"]) < 1:
            raise ConfigError(f"method.passes must be >= 1 (got {self.cfg['passes']}).")

    def update(self, rows: np.ndarray) -> dict:
        m = self.model
        alpha = float(self.cfg["alpha"])
        forget = self.batches_of(rows, self.generator("forget"), passes=int(self.cfg["passes"]))
        stream = self.retained_stream(self.generator("retain"))
        opt = self.optimizer(self.cfg["lr_scale"])
        seen = steps = 0
        for fb in forget:
            rb = next(stream, None)
            if rb is None:  # nothing retained: ascent alone
                loss = -(1.0 - alpha) * m.loss(fb)
            else:
                loss = alpha * m.loss(rb) - (1.0 - alpha) * m.loss(fb)
                seen += self.batch_rows(rb)
            self.step(opt, loss)
            seen += self.batch_rows(fb)
            steps += 1
        return {"steps": steps, "rows_touched": seen}
