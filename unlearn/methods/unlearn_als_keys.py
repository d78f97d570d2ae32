"""The record keys Unlearn-ALS reports (sweeps, objectives, per-sweep traces), declared on import.

Kept out of `unlearn_als` so the method reads without its long list of declarations; that module
imports this one where the declarations always stood, so the keys are declared in the same order.
"""

from __future__ import annotations

from ..metrics.keys import KEYS

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
