"""The record keys the approximate family reports: the counts and solver-health values of each
request (`unlearn.<name>.per_request`, counts also summed as `unlearn.<name>`), the timed parts of
an update, the shares the report derives from them, and whether M0 came from the cache. Imported
by `base.py`, so they are declared whenever the family is."""

from __future__ import annotations

from ...metrics.keys import KEYS

# per request (lists) and, for counts, summed over the stream
_DOCS = {
    "hvps": "Hessian-vector products",
    "solver_iters": "solver iterations",
    "steps": "optimiser steps",
    "epochs": "passes over the retained rows",
    "rows_touched": "training rows whose loss the update read",
    "params_touched": "parameter entries the update changed",
}
for _k, _doc in _DOCS.items():
    KEYS.declare(f"unlearn.{_k}", _doc, sub="unlearn", group="efficiency", doc=f"{_doc}, over all requests")
    KEYS.declare(
        f"unlearn.{_k}.per_request",
        f"{_doc} per request",
        sub="unlearn",
        group="efficiency",
        doc=f"{_doc} of each request",
    )
for _k, _doc in {
    "residual": "final relative residual ||(H + lambda I) x - v|| / ||v|| of the solve",
    "converged": "1 where the solver met its tolerance",
    "negative_curvature": "1 where the solver met a direction of non-positive curvature",
    "damping": "the absolute damping lambda added to the Hessian",
    "damping_retries": "times the damping was raised because the damped Hessian was indefinite",
    "step_norm": "||theta_after - theta_before|| of the update",
    "grad_norm_before": "the gradient norm of the retained objective before the update",
}.items():
    KEYS.declare(
        f"unlearn.{_k}.per_request", _k.replace("_", " "), sub="per request", group="other", doc=f"{_doc}, per request"
    )
# read from the per-request lists by the report (benchmarks/records_load.py)
KEYS.declare(
    "unlearn.unchanged_share",
    "requests left unchanged",
    group="completeness",
    doc="share of a stream's requests after which every parameter was as before (no step taken)",
)
KEYS.declare(
    "unlearn.damped_share",
    "raised damping",
    group="other",
    doc="share of a stream's requests whose Hessian needed more than the configured damping to solve",
)
KEYS.declare(
    "unlearn.converged_share",
    "solves converged",
    group="other",
    doc="share of a stream's requests whose solver met its tolerance",
)
for _part, _label in (
    ("prepare", "rebuilding the training state"),
    ("update", "the parameter update"),
    ("refresh", "refreshing derived buffers"),
    ("grad", "gradients"),
    ("solve", "the solve"),
):
    KEYS.declare_seconds(f"unlearn.{_part}", _label, f"unlearning's {_label}, over all requests", sub="unlearn")
KEYS.declare(
    "fit.m0_cached",
    "M0 from cache",
    group="other",
    doc="1 where M0 (retrain's fit of all of train) was loaded from the cache another run wrote",
)
