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


@METHODS.register("unlearn_als")
class UnlearnALS(Method):
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
            spent, info["epochs"], {"sweeps": int(info["epochs"]), "objective": float(info["objective"])}
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
        m = self.model
        if len(rows) == 0:  # nothing to forget: the model already is the fit on these rows
            obj = m.objective()
            counts = dict.fromkeys(("rows", "cells_removed", "cells_updated", "sweeps", "mark_s", "sweeps_s"), 0)
            traces = {"objective_trace": [obj], "retrain_gap_trace": [], "rank_gap_trace": []}
            self._rounds.append(
                {**counts, **traces, "objective_before": obj, "objective_after": obj, "converged": True}
            )
            extra = {"mark_s": Span(), "sweeps_s": Span(), "sweeps": 0, "cells_removed": 0}
            return UnlearnCost(seconds=Span(), extra=extra)
        track = self._reference is not None and bool(self.cfg["track_gap"])
        self.runtime.sync()
        t0 = clock()
        removed, updated = self.forget_cells(rows)
        before = m.objective()  # the trained factors under the retraining objective
        self.runtime.sync()
        mark = clock() - t0
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
        swept = sweeps[0]
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


from ..metrics.keys import KEYS  # noqa: E402

KEYS.declare("fit.sweeps", "ALS sweeps", sub="fit", group="other", doc="ALS sweeps of the fit")
KEYS.declare("fit.objective", "ALS objective", sub="fit", group="other", doc="the ALS objective after the fit")
KEYS.declare(
    "unlearn.sweeps", "ALS sweeps", sub="unlearn", group="other", doc="ALS sweeps of unlearning, over all requests"
)
KEYS.declare(
    "unlearn.round_sweeps", "ALS sweeps per request", sub="unlearn", group="other", doc="ALS sweeps of each request"
)
KEYS.declare(
    "unlearn.cells_removed",
    "cells removed",
    sub="unlearn",
    group="other",
    doc="cells whose observation the forget rows removed",
)
KEYS.declare(
    "unlearn.cells_updated",
    "cells updated",
    sub="unlearn",
    group="other",
    doc="cells whose value or confidence changed",
)
KEYS.declare(
    "unlearn.converged",
    "converged",
    sub="unlearn",
    group="other",
    doc="1 where every request's sweeps met the tolerance",
)
for _part, _label in (("mark", "marking"), ("sweeps", "sweeps")):
    KEYS.declare_seconds(f"unlearn.{_part}", _label, f"unlearning's {_label}, over all requests", sub="unlearn")
KEYS.declare(
    "unlearn.objective_before",
    "ALS objective",
    sub="before sweeps",
    group="other",
    doc="the retraining objective at the trained factors, F removed",
)
KEYS.declare(
    "unlearn.objective_after",
    "ALS objective",
    sub="after sweeps",
    group="other",
    doc="the retraining objective after the last request's sweeps",
)
KEYS.declare(
    "unlearn.oracle_objective",
    "ALS objective",
    sub="oracle",
    reference=True,
    group="other",
    doc="the retrain oracle's objective on the final retained data",
)
KEYS.declare(
    "unlearn.objective_trace",
    "objective trace",
    sub="unlearn",
    group="other",
    doc="the objective before and after every sweep, requests concatenated",
)
KEYS.declare(
    "unlearn.retrain_gap_trace",
    "score gap trace",
    sub="unlearn",
    group="completeness",
    doc="the score gap to the oracle after every sweep",
)
KEYS.declare(
    "unlearn.rank_gap_trace",
    "rank gap trace",
    sub="unlearn",
    group="completeness",
    doc="the rank gap to the oracle after every sweep",
)
KEYS.declare(
    "unlearn.rank_gap_trace.deleted",
    "rank gap trace",
    sub="unlearn, deleted",
    group="completeness",
    doc="the rank gap over the users who lost rows after every sweep",
)
KEYS.declare(
    "retrain.objective_trace",
    "objective trace",
    sub="cold start",
    reference=True,
    group="other",
    doc="ALS from a random start on the retained rows: its objective after every sweep",
)
KEYS.declare(
    "retrain.retrain_gap_trace",
    "score gap trace",
    sub="cold start",
    reference=True,
    group="completeness",
    doc="ALS from a random start: its score gap to the oracle after every sweep",
)
KEYS.declare(
    "retrain.rank_gap_trace",
    "rank gap trace",
    sub="cold start",
    reference=True,
    group="completeness",
    doc="ALS from a random start: its rank gap to the oracle after every sweep",
)
