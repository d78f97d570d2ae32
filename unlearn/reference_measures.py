"""What a run measures against its reference models: the speedup of unlearning over retraining
(the retrain oracle's seconds on this process's scale), the unlearned model's score and rank gaps
to the oracle with the seed floor beside them, and the exact gap to the exact replica."""

from __future__ import annotations

import logging

from .calibration import Calibration
from .data.interactions import TrainSet
from .methods.base import Method
from .methods.costs import UnlearnCost
from .metrics.completeness import RankGap, score_gaps
from .metrics.keys import KEYS
from .metrics.timing import TIMER_FLOOR_S, Span, clock
from .preparation import Prepared

log = logging.getLogger("unlearn.lifecycle")  # the run's log lines keep the lifecycle's name


def speedup(costs: list[UnlearnCost], oracle: dict, cal: Calibration, own: bool) -> dict:
    """Unlearning against retraining from scratch once per request (a stream of R requests costs R
    fits), with both sides on this process's scale. `speedup.basis`: `self` (the method is
    retrain: 1 by definition), `same_process` (the oracle was trained in this run), `calibrated`
    (a cached oracle's seconds carried over by the ratio of the two processes' calibrations) or
    `uncalibrated` (a cached oracle without a comparable calibration: its seconds as they were).
    Unlearning shorter than the timer floor counts as the floor (`speedup.floored`)."""
    n = len(costs)
    spent = sum((c.span for c in costs), Span())
    measured: Span = oracle["span"]
    then: Calibration | None = oracle.get("calibration")
    if own:
        basis, retrain = "self", costs[-1].span
    elif not oracle["cached"]:
        basis, retrain = "same_process", measured
    elif then is not None and then.key == cal.key:
        basis = "calibrated"
        retrain = Span(measured.wall * cal.span.wall / then.span.wall, measured.cpu * cal.span.cpu / then.span.cpu)
    else:
        basis, retrain = "uncalibrated", measured
    floor = TIMER_FLOOR_S * n
    out = {
        **retrain.keys("retrain"),
        "retrain_epochs": int(oracle["epochs"]),
        "retrain_cached": bool(oracle["cached"]),
        "retrain_s.measured": float(measured.wall),
        "speedup.basis": basis,
        "speedup.floored": bool(spent.wall < floor),
    }
    if own:
        out.update({"speedup": 1.0, "speedup.cpu": 1.0})
    else:
        out["speedup"] = retrain.wall * n / max(spent.wall, floor)
        out["speedup.cpu"] = retrain.cpu * n / max(spent.cpu, floor) if spent.cpu == spent.cpu else None
    return out


def oracle_gaps(p: Prepared, minus: TrainSet, method: Method, model: Method, twin: Method | None) -> dict:
    """M1 against the retrain oracle: `retrain_gap` (per-user standardised scores; `.raw` on raw
    scores) and `retrain_rank_gap@K` (over retained users; `.deleted`: the users who lost rows);
    with `twin` (the oracle with another seed), the same between the two oracles as `seed_floor*`
    and `rank_gap_over_floor@K` = gap / floor."""
    rt, ccfg, n_users = p.runtime, p.cfg.get("completeness") or {}, p.data.n_users
    ks = sorted({int(k) for k in (p.cfg.get("eval") or {}).get("ks", [10, 20, 50])} | {int(ccfg.get("forget_k", 20))})
    ranks = RankGap(
        minus.train,
        p.data.train.subset(p.request.rows),
        n_users,
        p.data.n_items,
        ks,
        p.spec["seed"],
        int(ccfg.get("rank_gap_max_users", 5000)),
        rt.device,
        rt.eval_batch,
    )
    gaps = score_gaps(method.score, model.score, n_users, rt.eval_batch, rt.device)
    ref = ranks.tops(model.score)
    out = {"retrain_gap": gaps["rel_fro_std"], "retrain_gap.raw": gaps["rel_fro"]}
    out.update({f"retrain_rank_gap{k}": v for k, v in ranks.gap(ranks.tops(method.score), ref).items()})
    if twin is not None:
        out["seed_floor.retrain_gap"] = score_gaps(twin.score, model.score, n_users, rt.eval_batch, rt.device)[
            "rel_fro_std"
        ]
        floor = ranks.gap(ranks.tops(twin.score), ref)
        out.update({f"seed_floor{k}": v for k, v in floor.items()})
        out.update(
            {f"rank_gap_over_floor{k}": out[f"retrain_rank_gap{k}"] / v if v > 0 else None for k, v in floor.items()}
        )
    return out


def exact_gap(p: Prepared, minus: TrainSet, method: Method, n_retrained: int, fit_replica: bool) -> dict:
    """`exact_gap` against the exact replica; it can only fail if some shard was left as it was,
    so with `untouched_shards` = 0 it is null (not informative) and no replica is fitted."""
    out = {"untouched_shards": method.n_shards - n_retrained, "exact_gap": None}
    if fit_replica and out["untouched_shards"] > 0:
        t0 = clock()
        replica = method.exact_replica(minus)
        out.update((clock() - t0).keys("exact_replica"))
        log.info("exact replica fitted in %.3g s", out["exact_replica_s"])
        out["exact_gap"] = score_gaps(
            method.score, replica.score, p.data.n_users, p.runtime.eval_batch, p.runtime.device
        )["max_abs"]
    return out


_EFF = {"group": "efficiency"}
KEYS.declare(
    "retrain_s",
    "retrain time",
    unit="s",
    reference=True,
    doc=("wall seconds of one fit of the retrain oracle on this run's scale (see speedup.basis)"),
    **_EFF,
)
KEYS.declare(
    "retrain_cpu_s",
    "retrain CPU",
    unit="s",
    reference=True,
    doc="process CPU seconds of one oracle fit on this run's scale",
    **_EFF,
)
KEYS.declare("retrain_epochs", "retrain epochs", reference=True, **_EFF)
KEYS.declare(
    "speedup",
    "speedup",
    unit="x",
    better="higher",
    doc=("retrain seconds x requests / unlearning seconds, both on this run's scale; 1 for retrain itself"),
    **_EFF,
)
KEYS.declare(
    "speedup.cpu", "speedup (CPU)", unit="x", better="higher", doc="the same ratio of process CPU seconds", **_EFF
)
