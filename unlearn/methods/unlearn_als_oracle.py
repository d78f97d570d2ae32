"""Unlearn-ALS's traces against the retrain oracle, recorded outside every timed region.

The score gap ||S(M) - S(oracle)||_F / ||S(oracle)||_F (`relative_gap`), the top-K rank gap, the
oracle's own objective on the retained data and a cold-start ALS run on them: what the convergence
figure plots. A mixin of `UnlearnALS` (which supplies `data`, `runtime`, `cfg`, `seed`, `model`,
`new_model` and `model_seed`), kept apart from the method's timed unlearning path.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Method


def relative_gap(model_fn, reference_fn, n_users: int, batch: int, device) -> float:
    """||S(model) - S(ref)||_F / ||S(ref)||_F over all users x items, in user batches (float64)."""
    diff_sq, ref_sq = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, n_users, batch):
            users = torch.arange(start, min(start + batch, n_users), device=device)
            b = reference_fn(users).to(torch.float64)
            d = model_fn(users).to(torch.float64) - b
            diff_sq += float((d * d).sum())
            ref_sq += float((b * b).sum())
    return (diff_sq**0.5) / (ref_sq**0.5) if ref_sq > 0 else float("nan")


class OracleTraces:
    """Set the retrain oracle and trace the distance to it (`UnlearnALS`'s instrumentation)."""

    def set_reference(self, score_fn, oracle: Method | None = None) -> None:
        """The retrain oracle's score function (per-sweep retrain_gap and rank-gap traces) and,
        where given, the oracle itself (its objective on the retained data)."""
        self._reference = score_fn
        self._oracle = oracle

    def _rank_tracer(self, rows: np.ndarray):
        """users' top-K gap to the oracle of a score function, on the data after `rows` left."""
        from ..metrics.completeness import RankGap

        rt = self.runtime
        ranks = RankGap(
            self.data.train,
            self.data.rows.subset(rows),
            self.data.n_users,
            self.data.n_items,
            [int(self.cfg["trace_k"])],
            self.seed,
            self.data.n_users,
            rt.device,
            rt.eval_batch,
        )
        ref = ranks.tops(self._reference)
        k = int(self.cfg["trace_k"])
        return lambda fn: (lambda g: (g[f"@{k}"], g[f"@{k}.deleted"]))(ranks.gap(ranks.tops(fn), ref))

    def oracle_objective(self) -> float | None:
        """The retraining objective on the retained data at the oracle's factors (None without an
        oracle that has factors)."""
        try:
            users, items = self._oracle.shards[0].embeddings()
        except (AttributeError, IndexError, NotImplementedError, TypeError):
            return None
        m = self.new_model().to(self.runtime.device).requires_grad_(False)
        t = self.data.train
        m.observe(t.users, t.items, t.ratings)
        m.set_factors(users, items)
        return float(m.objective())

    def _gap(self) -> float:
        return relative_gap(
            self.model.score, self._reference, self.data.n_users, self.runtime.eval_batch, self.runtime.device
        )

    def cold_start_trace(self, trace_rank=None) -> dict:
        """For the convergence figure (outside every timed region): ALS from a random start on
        the retained rows, as the retrain oracle runs it, with its objective and retrain_gap after
        every sweep."""
        cold = self.new_model()
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.model_seed())
        cold.reset_parameters(gen)
        cold.to(self.runtime.device).requires_grad_(False)
        t = self.data.train
        cold.observe(t.users, t.items, t.ratings)
        gaps = [
            relative_gap(cold.score, self._reference, self.data.n_users, self.runtime.eval_batch, self.runtime.device)
        ]
        ranks = [trace_rank(cold.score)] if trace_rank else []
        start = cold.objective()

        def after_sweep(_sweep, _obj):
            gaps.append(
                relative_gap(
                    cold.score, self._reference, self.data.n_users, self.runtime.eval_batch, self.runtime.device
                )
            )
            if trace_rank:
                ranks.append(trace_rank(cold.score))

        trace = cold.run_sweeps(
            int(self.spec["submodel"].get("iterations", cold.cfg["iterations"])),
            float(cold.cfg["tol"]),
            start=start,
            callback=after_sweep,
        )
        return {
            "cold_objective_trace": [start] + trace,
            "cold_retrain_gap_trace": gaps,
            "cold_rank_gap_trace": [r for r, _ in ranks],
        }
