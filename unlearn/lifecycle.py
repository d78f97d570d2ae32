"""One run: data -> forget set -> fit -> evaluate -> unlearn -> evaluate -> oracles ->
completeness -> one flat record. Takes plain dicts; knows nothing of Hydra. What a method must
provide is in `unlearn.methods.base`; this module reads nothing else of it.

`execute` is the run's sequence, one function per stage. What a run is before anything is trained
(the checks, the data, the forget set) lives in `preparation`; what it measures against its
reference models (speedup, oracle gaps, exact gap) in `reference_measures`. Both are re-exported."""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch

from . import oracle as oracles
from .calibration import Calibration, calibrate
from .data.interactions import TrainSet
from .methods.base import Method
from .methods.costs import UnlearnCost
from .metrics.keys import KEYS
from .metrics.stages import StageMetrics
from .metrics.timing import Span, clock, peak_memory
from .preparation import AXES, Prepared, check, describe, hyperparameters, method_spec, prepare
from .reference_measures import exact_gap, oracle_gaps, speedup
from .runtime import Runtime
from .warmup import warm_up

__all__ = [
    "AXES",
    "Prepared",
    "check",
    "describe",
    "exact_gap",
    "execute",
    "hyperparameters",
    "measured",
    "method_spec",
    "oracle_gaps",
    "prepare",
    "run",
    "speedup",
]

log = logging.getLogger(__name__)
OracleFn = Callable[..., tuple]  # (trained=None, seed=the run's) -> (model, info), as `oracle.retrain_oracle`


def execute(p: Prepared) -> dict:
    """The run's sequence; returns the record's measured keys."""
    method, ccfg = p.method, p.cfg.get("completeness") or {}
    start = clock()
    full, minus = train_views(p)
    stages = StageMetrics(p.data, p.request, p.cfg, p.runtime)
    rec = open_record()
    calibrated = warm_up_and_calibrate(p, full, rec)
    oracle = oracle_fitter(p, minus, calibrated)
    fit_model(p, full, rec)  # 3-4: M0
    rec.update(measured(stages, "before", method.score, method, method.user_vectors))
    ref = fit_reference(p, oracle, ccfg)
    costs = unlearn_requests(p, rec)  # 5-6: M1, request by request
    cal = recalibrate(p, full, calibrated, rec)
    rec.update(measured(stages, "after", method.score, method, method.user_vectors))
    if ccfg.get("retrain_oracle", True):  # 7: oracles
        model = retrain_oracle(p, oracle, ref, costs, cal, rec)
        rec.update(measured(stages, "retrain", model.score, method, model.user_vectors))
        gaps_to_oracle(p, minus, oracle, model, ccfg, rec)
    if method.builds_exact_replica:
        rec.update(exact_gap(p, minus, method, rec["n_shards_retrained"], ccfg.get("exact_replica", True)))
    if ccfg.get("partition_drift", True):
        measure_partition_drift(p, minus, rec)
    close_record(p, stages, start, rec)  # 8: the record
    return rec


def train_views(p: Prepared) -> tuple[TrainSet, TrainSet]:
    """The full train set (with the side features of the id universe: twotower) and train minus F,
    the one view that methods, oracle and replica read."""
    full = TrainSet(
        p.data.n_users, p.data.n_items, p.data.train, p.data.valid, features=p.data.info.get("features")
    )  # side features of the id universe (twotower)
    minus = full.without(p.request.rows)  # train minus F: methods, oracle and replica read this one view
    return full, minus


def open_record() -> dict:
    """The record's first keys: torch's thread count and the machine's load at the start; warns when
    the threads would compete for already loaded cores."""
    rec: dict = {"threads": torch.get_num_threads(), "load_avg.start": os.getloadavg()[0]}
    if rec["threads"] > 1 and rec["load_avg.start"] + rec["threads"] > (os.cpu_count() or 1) + 0.5:
        log.warning(
            "%d torch threads on a machine already loaded %.1f of %d cores: multi-threaded timings under "
            "load are erratic (runtime.threads=1 keeps them comparable)",
            rec["threads"],
            rec["load_avg.start"],
            os.cpu_count() or 1,
        )
    return rec


def warm_up_and_calibrate(p: Prepared, full: TrainSet, rec: dict) -> list[Calibration]:
    """Before anything is timed: compilation and first calls (warm-up), then this process's scale
    (the first calibration; `recalibrate` adds the second)."""
    rec.update(warm_up(p.spec, full, p.runtime, p.method.n_shards))
    calibrated = [calibrate(full, p.spec["submodel"], p.runtime)]
    log.info("warm-up %s (%.2g s); calibration %.3g s", rec["warm_up"], rec["warm_up_s"], calibrated[0].span.wall)
    return calibrated


def oracle_fitter(p: Prepared, minus: TrainSet, calibrated: list[Calibration]) -> OracleFn:
    """The retrain oracle of this run (or, with `seed`, of a reseeded twin), cached by its key; its
    calibration is the first one until `recalibrate` adds the second, then their mean."""
    cfg, rt = p.cfg, p.runtime

    def oracle(trained=None, seed=p.spec["seed"]):
        spec = {**p.spec, "seed": seed}
        key = oracles.oracle_key(p.data.split_hash, p.request.content_hash(), spec)
        cal = calibrated[0] if len(calibrated) == 1 else calibrated[0].mean(calibrated[1])
        return oracles.retrain_oracle(minus, spec, key, rt, cfg.get("cache_dir"), trained=trained, calibration=cal)

    return oracle


def fit_model(p: Prepared, full: TrainSet, rec: dict) -> None:
    """Fit the method on the full train set (M0)."""
    log.info("fit %s on %d rows", p.spec["method"]["name"], len(p.data.train))
    rec.update(p.method.fit(full).record())
    log.info("fit done in %.3g s", rec["fit_s"])


def fit_reference(p: Prepared, oracle: OracleFn, ccfg: dict) -> tuple | None:
    """The retrain oracle fitted before unlearning and handed to a method that unlearns against it
    (`needs_reference`); None for the others (or with the oracle off)."""
    ref = oracle() if p.method.needs_reference and ccfg.get("retrain_oracle", True) else None
    if ref is not None:
        p.method.set_reference(ref[0].score, ref[0])
    return ref


def unlearn_requests(p: Prepared, rec: dict) -> list[UnlearnCost]:
    """Unlearn the request's rounds one by one (M1); returns each round's cost."""
    costs = []
    for i, rows in enumerate(p.request.rounds):
        costs.append(p.method.unlearn(rows))
        log.info(
            "request %d/%d: %d rows unlearned in %.3g s", i + 1, len(p.request.rounds), len(rows), costs[-1].span.wall
        )
    rec.update(UnlearnCost.record(costs))
    return costs


def recalibrate(p: Prepared, full: TrainSet, calibrated: list[Calibration], rec: dict) -> Calibration:
    """The second calibration, after unlearning; returns the mean of the two (this run's scale)."""
    calibrated.append(calibrate(full, p.spec["submodel"], p.runtime))
    cal = calibrated[0].mean(calibrated[1])
    rec.update(cal.record())
    rec["calibration.drift"] = calibrated[1].span.wall / calibrated[0].span.wall
    return cal


def retrain_oracle(
    p: Prepared, oracle: OracleFn, ref: tuple | None, costs: list[UnlearnCost], cal: Calibration, rec: dict
) -> Method:
    """The retrain oracle after unlearning (the reference already fitted, or a fit now) and the
    speedup over it; returns its model."""
    # retrain's model after its last request is a fit on train minus F: the oracle itself
    own = p.method.is_retrain_oracle()
    model, info = ref or oracle(trained=(p.method, costs[-1]) if own else None)
    rec.update(speedup(costs, info, cal, own))
    log.info(
        "oracle %s in %.3g s; speedup %.3g (%s)",
        "read from the cache, trained" if info["cached"] else "trained",
        rec["retrain_s"],
        rec["speedup"],
        rec["speedup.basis"],
    )
    return model


def gaps_to_oracle(p: Prepared, minus: TrainSet, oracle: OracleFn, model: Method, ccfg: dict, rec: dict) -> None:
    """The score and rank gaps to the oracle, with the seed floor: an oracle that differs only in its
    seed (cached like the oracle); `oracle_gaps_s` times them, the twin's fit included."""
    t0 = clock()
    twin = oracle(seed=p.spec["seed"] + 1)[0] if ccfg.get("seed_floor", True) else None
    rec.update(oracle_gaps(p, minus, p.method, model, twin))
    rec.update((clock() - t0).keys("oracle_gaps"))  # what measuring them cost (twin fit included)


def measure_partition_drift(p: Prepared, minus: TrainSet, rec: dict) -> None:
    """How far the partition rebuilt on train minus F lies from the one fitted; timed, since a rebuilt
    partition (re-pretraining) costs."""
    t0 = clock()
    rec.update(p.method.partition_drift(minus))
    rec.update((clock() - t0).keys("partition_drift"))  # a rebuilt partition (re-pretraining) costs


def close_record(p: Prepared, stages: StageMetrics, start: Span, rec: dict) -> None:
    """The record's last keys: what the stages computed across stages, the method's description,
    peak memory, the whole run's seconds (from `start`) and the load at the end."""
    rec.update(stages.finish())
    rec.update(p.method.describe())
    rec.update(peak_memory(p.runtime.device))
    rec.update((clock() - start).keys("lifecycle"))
    rec["load_avg.end"] = os.getloadavg()[0]
    log.info("run done in %.3g s", rec["lifecycle_s"])


def measured(stages: StageMetrics, stage: str, *args) -> dict:
    """One stage's measurements, logged with their seconds."""
    t0 = clock()
    out = stages.measure(stage, *args)
    log.info("evaluated %s in %.2g s", stage, (clock() - t0).wall)
    return out


def run(cfg: dict, runtime: Runtime) -> dict:
    """Library entry point: prepare (checks, nothing trained) then execute."""
    p = prepare(cfg, runtime)
    return {**describe(p), **execute(p)}


_EFF = {"group": "efficiency"}
KEYS.declare("threads", "threads", group="identity", doc="torch intra-op threads of the run")
KEYS.declare(
    "load_avg.{name}",
    "load average",
    sub="{name}",
    group="efficiency",
    doc="the machine's 1-minute load average at the start and end of the run (other processes' load)",
)
for _name, _label in (
    ("oracle_gaps", "oracle gaps"),
    ("exact_replica", "exact replica"),
    ("partition_drift", "partition drift"),
    ("lifecycle", "whole run"),
    ("warm_up", "warm-up"),
):
    KEYS.declare(
        f"{_name}_s", _label, unit="s", doc=f"wall seconds of {_label} (not part of fit or unlearning)", **_EFF
    )
    KEYS.declare(f"{_name}_cpu_s", f"{_label} CPU", unit="s", doc=f"process CPU seconds of {_label}", **_EFF)
