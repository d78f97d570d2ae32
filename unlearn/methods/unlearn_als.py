"""Unlearn-ALS ("Netflix and Forget", Xu et al. 2023): unlearning a bilinear model by ALS fine-tuning.

The implicit-ALS objective sums over every cell, so deleting interactions only turns their cells
into unobserved ones (p = 0, c = 1). After that change the objective *is* the retraining
objective on train minus F; ALS started from the trained factors (never re-initialised, unlike the
released code) descends it monotonically and reaches the retrain optimum in a few sweeps.

fit: cold-start ALS on train with the seed the `retrain` method gives its single shard, so M0 is
the very model `retrain` would fit on train. unlearn(rows): mark exactly those rows' cells
unobserved (a cell that other retained rows still cover stays observed, with its value recomputed
from them, as retraining would see it), then sweep from the current factors until the relative
objective change is below `method.tol` or `method.max_sweeps` sweeps are done.

When the lifecycle hands in the retrain oracle (`set_reference`, because `needs_reference` is
set), the relative Frobenius distance of the score matrices ||S(M) - S(oracle)||_F / ||S(oracle)||_F
(`unlearn.retrain_gap_trace`) and the top-K rank gap to the oracle (`unlearn.rank_gap_trace`, 1 -
mean Jaccard of the top-`trace_k` lists over the retained users, the user's retained rows masked;
`.deleted` over the users who lost rows) are recorded before the first sweep and after every sweep,
outside the timed region, and so is the oracle's own objective on the final retained data
(`unlearn.oracle_objective`): the common target of the warm (unlearning) and cold (retraining)
objective traces in the convergence figure.

The oracle traces live in `unlearn_als_oracle` (a mixin of the method) and the record keys in
`unlearn_als_keys`; this module holds the method's fit, its per-request marking and sweeps, and
the per-request records that `describe` sums up.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..metrics.timing import Span, clock
from ..models.als import ImplicitALS
from ..registry import METHODS
from ..runtime import CPU
from ..seeding import derive_seed
from .base import Method
from .costs import FitCost, UnlearnCost
from .unlearn_als_oracle import OracleTraces, relative_gap  # noqa: F401  (relative_gap: re-exported)


@METHODS.register("unlearn_als")
class UnlearnALS(OracleTraces, Method):
    needs_reference = True  # the lifecycle fits the retrain oracle first and calls set_reference
    allowed = {"partitioner": ["none"], "aggregator": ["none"], "submodel": ["als"]}
    defaults = {"tol": 1.0e-4, "max_sweeps": 50, "track_gap": True, "cold_trace": False, "trace_k": 20}

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        self.cfg = {**self.defaults, **self.cfg}
        if not float(self.cfg["tol"]) >= 0:
            raise ConfigError(f"method.tol must be >= 0 (got {self.cfg['tol']}).")
        if int(self.cfg["max_sweeps"]) < 1:
            raise ConfigError(f"method.max_sweeps must be >= 1 (got {self.cfg['max_sweeps']}).")
        self.model: ImplicitALS | None = None
        self._reference = None
        self._oracle = None
        self._rounds: list[dict] = []

    # -- building blocks ----------------------------------------------------------------
    def new_model(self) -> ImplicitALS:
        return ImplicitALS(self.data.n_users, self.data.n_items, self.spec["submodel"], runtime=self.runtime)

    def model_seed(self) -> int:
        return derive_seed(self.seed, "shard", 0)  # what `retrain` (one shard, k = 0) uses

    # -- the method API -------------------------------------------------------------------
    def fit(self, data: TrainSet) -> FitCost:
        self._bind(data)
        self.runtime.sync()
        t0 = clock()
        self.model = self.new_model()
        info = self.model.fit(data, self.model_seed())
        self.model.requires_grad_(False)
        self.runtime.sync()
        spent = clock() - t0
        return FitCost.one_model(
            spent, info.epochs, {"sweeps": int(info.epochs), "objective": float(info.extra["objective"])}
        )

    def _bind(self, data: TrainSet) -> None:
        self.data = data
        self._rounds = []
        keys = data.rows.users * data.n_items + data.rows.items
        self._duplicate_cells = len(np.unique(keys)) < len(keys)  # several train rows on one cell

    def forget_cells(self, rows: np.ndarray) -> tuple[int, int]:
        """Mark the cells of `rows` unobserved, except cells that retained rows still cover (their
        value is recomputed from those rows). Returns (cells removed, cells updated)."""
        self.data = self.data.without(rows)
        train = self.data.rows
        n_items = self.data.n_items
        keys = np.unique(train.users[rows] * n_items + train.items[rows])
        if not self._duplicate_cells:  # every forgotten cell loses its only row
            removed = self.model.unobserve(keys // n_items, keys % n_items) if len(keys) else 0
            return removed, 0
        kept_rows = self.data.row_index
        kept_keys = train.users[kept_rows] * n_items + train.items[kept_rows]
        still = np.isin(keys, kept_keys)
        gone = keys[~still]
        removed = self.model.unobserve(gone // n_items, gone % n_items) if len(gone) else 0
        updated = 0
        shared = keys[still]
        if len(shared) and not self.model.cfg["binarize"]:
            hit = np.isin(kept_keys, shared)
            k = kept_keys[hit]
            uniq, inverse = np.unique(k, return_inverse=True)
            values = np.zeros(len(uniq))
            np.add.at(values, inverse, train.ratings[kept_rows[hit]].astype(np.float64))
            self.model.set_cells(uniq // n_items, uniq % n_items, values)
            updated = len(uniq)
        return removed, updated

    def unlearn(self, rows: np.ndarray) -> dict:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:  # nothing to forget: the model already is the fit on these rows
            return self._forget_nothing()
        track = self._reference is not None and bool(self.cfg["track_gap"])
        self.runtime.sync()
        t0 = clock()
        removed, updated = self.forget_cells(rows)
        before = self.model.objective()  # the trained factors under the retraining objective
        self.runtime.sync()
        mark = clock() - t0
        trace, swept, gaps, ranks, trace_rank = self._sweep(rows, before, track)
        values = [before] + trace
        converged = len(values) >= 2 and abs(values[-2] - values[-1]) <= float(self.cfg["tol"]) * abs(values[-2])
        cold = self.cold_start_trace(trace_rank) if (track and self.cfg["cold_trace"]) else {}
        self._rounds.append(
            {
                **cold,
                "rows": len(rows),
                "cells_removed": removed,
                "cells_updated": updated,
                "sweeps": len(trace),
                "objective_before": before,
                "objective_after": trace[-1] if trace else before,
                "objective_trace": [before] + trace,
                "retrain_gap_trace": gaps,
                "rank_gap_trace": ranks,
                "mark_s": mark.wall,
                "sweeps_s": swept.wall,
                "converged": bool(converged),
            }
        )
        return UnlearnCost(
            seconds=mark + swept,
            extra={"mark_s": mark, "sweeps_s": swept, "sweeps": len(trace), "cells_removed": removed},
        )

    def _forget_nothing(self) -> UnlearnCost:
        """An empty request: record a round without sweeps, at no cost."""
        obj = self.model.objective()
        counts = dict.fromkeys(("rows", "cells_removed", "cells_updated", "sweeps", "mark_s", "sweeps_s"), 0)
        traces = {"objective_trace": [obj], "retrain_gap_trace": [], "rank_gap_trace": []}
        self._rounds.append({**counts, **traces, "objective_before": obj, "objective_after": obj, "converged": True})
        extra = {"mark_s": Span(), "sweeps_s": Span(), "sweeps": 0, "cells_removed": 0}
        return UnlearnCost(seconds=Span(), extra=extra)

    def _sweep(self, rows: np.ndarray, before: float, track: bool) -> tuple:
        """Sweep from the current factors (whose objective is `before`) to the tolerance. Returns
        (objective after each sweep, time in the sweeps, retrain-gap trace, rank-gap trace, rank
        tracer); the traces are recorded before the first sweep and after every sweep, outside
        the timed region, when `track`."""
        m = self.model
        gaps = [self._gap()] if track else []
        trace_rank = self._rank_tracer(rows) if track else None
        ranks = [trace_rank(m.score)] if track else []
        sweeps = [Span()]  # the sweeps' time so far
        last = [clock()]

        def after_sweep(_sweep, _obj):  # the gap is computed outside the timed region
            self.runtime.sync()
            sweeps[0] += clock() - last[0]
            if track:
                gaps.append(self._gap())
                ranks.append(trace_rank(m.score))
            last[0] = clock()

        trace = m.run_sweeps(int(self.cfg["max_sweeps"]), float(self.cfg["tol"]), start=before, callback=after_sweep)
        self.runtime.sync()
        sweeps[0] += clock() - last[0]
        return trace, sweeps[0], gaps, ranks, trace_rank

    def score(self, users):
        return self.model.score(users)

    def user_vectors(self, users):
        return {"": self.model.embeddings()[0][users]}

    def describe(self) -> dict:
        rounds = self._rounds
        out = super().describe()
        if not rounds:
            return out
        out.update(
            {
                "unlearn.round_sweeps": [r["sweeps"] for r in rounds],
                "unlearn.converged": all(r["converged"] for r in rounds),
                "unlearn.objective_before": rounds[0]["objective_before"],
                "unlearn.objective_after": rounds[-1]["objective_after"],
                # per round: the objective before the first sweep, then after every sweep; concatenated
                "unlearn.objective_trace": [v for r in rounds for v in r["objective_trace"]],
                "unlearn.cells_updated": int(sum(r["cells_updated"] for r in rounds)),
            }
        )
        if any(r["retrain_gap_trace"] for r in rounds):
            out["unlearn.retrain_gap_trace"] = [v for r in rounds for v in r["retrain_gap_trace"]]
            out["unlearn.rank_gap_trace"] = [v for r in rounds for v, _ in r["rank_gap_trace"]]
            out["unlearn.rank_gap_trace.deleted"] = [v for r in rounds for _, v in r["rank_gap_trace"]]
        target = self.oracle_objective() if self._oracle is not None else None
        if target is not None:  # the oracle's objective on the final retained data
            out["unlearn.oracle_objective"] = target
        if "cold_objective_trace" in rounds[-1]:  # cold start on the final retained data
            out["retrain.objective_trace"] = rounds[-1]["cold_objective_trace"]
            out["retrain.retrain_gap_trace"] = rounds[-1]["cold_retrain_gap_trace"]
            out["retrain.rank_gap_trace"] = rounds[-1]["cold_rank_gap_trace"]
        return out

    # -- caching --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {f"model.{n}": t.detach().cpu() for n, t in self.model.state_dict().items()}
        state["kept"] = torch.as_tensor(self.data.kept_mask)
        return state

    def load_state_dict(self, state: dict, data: TrainSet) -> None:
        kept = state["kept"].numpy().astype(bool)
        if len(kept) != len(data.rows) or not np.array_equal(kept, data.kept_mask):
            raise ValueError("cached unlearn_als state was fitted on other training rows")
        self._bind(data)
        self.model = self.new_model()
        self.model.load_state_dict({n[len("model.") :]: t for n, t in state.items() if n.startswith("model.")})
        self.model.to(self.runtime.device).requires_grad_(False).eval()
        kept_rows = data.train
        self.model.observe(kept_rows.users, kept_rows.items, kept_rows.ratings)


from . import unlearn_als_keys  # noqa: E402, F401  (declares the record keys, after the method as always)
