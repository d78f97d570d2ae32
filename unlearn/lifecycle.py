"""One run: data -> forget set -> fit -> evaluate -> unlearn -> evaluate -> oracles ->
completeness -> one flat record. Takes plain dicts; knows nothing of Hydra. What a method must
provide is in `unlearn.methods.base`; this module reads nothing else of it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from . import oracle as oracles
from .calibration import Calibration, calibrate
from .data.deletion import DeletionRequest
from .data.interactions import Dataset, TrainSet
from .data.load import load_dataset
from .data.request_kinds import prepare_request
from .errors import ConfigError
from .methods.base import Method
from .methods.costs import UnlearnCost
from .metrics.completeness import RankGap, score_gaps
from .metrics.keys import KEYS
from .metrics.stages import StageMetrics
from .metrics.timing import TIMER_FLOOR_S, Span, clock, peak_memory
from .registry import METHODS, PROBES
from .runtime import CPU, Runtime
from .warmup import warm_up

log = logging.getLogger(__name__)
AXES = ("method", "submodel", "partitioner", "aggregator")


@dataclass
class Prepared:
    """Everything checked before any training: data, forget set, an unfitted method."""

    cfg: dict
    data: Dataset
    request: DeletionRequest
    method: Method
    runtime: Runtime

    @property
    def spec(self) -> dict:
        return self.method.spec


def method_spec(cfg: dict) -> dict:
    for axis in AXES:
        if not isinstance(cfg.get(axis), dict) or "name" not in cfg[axis]:
            raise ConfigError(f"The config has no '{axis}' with a name; choose one with {axis}=NAME.")
    spec = {axis: dict(cfg[axis]) for axis in AXES}
    seed = cfg.get("seed", 0)
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int)
        and not (isinstance(seed, str) and seed.lstrip("-").isdigit())
    ):
        raise ConfigError(f"seed must be an integer, not {seed!r}.")
    spec["seed"] = int(seed)
    return spec


def check(cfg: dict) -> dict:
    """What can be refused without loading data: the axes and the seed, the probes' names, and the
    method's accepted choices and settings (its constructor's checks). Returns the method spec;
    raises UserError."""
    spec = method_spec(cfg)
    method_cls = METHODS.get(spec["method"]["name"])
    for name in (cfg.get("eval") or {}).get("probes") or []:
        PROBES.get(name)
    method_cls(spec, CPU, None)
    return spec


def prepare(cfg: dict, runtime: Runtime) -> Prepared:
    """Load data, draw F, build and check the method. Raises UserError; trains nothing."""
    spec = check(cfg)
    method_cls = METHODS.get(spec["method"]["name"])
    t0 = clock()
    data = load_dataset(cfg["dataset"], cfg.get("cache_dir"))
    log.info(
        "data %s: %d users, %d items, %d train rows (%.2g s)",
        data.name,
        data.n_users,
        data.n_items,
        len(data.train),
        (clock() - t0).wall,
    )
    data, request = prepare_request(data, cfg.get("deletion") or {}, spec["seed"])  # a kind may inject users first
    method = method_cls(spec, runtime, cfg.get("cache_dir"))
    method.validate(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    return Prepared(cfg, data, request, method, runtime)


def execute(p: Prepared) -> dict:
    """The run's sequence; returns the record's measured keys."""
    cfg, method, rt, ccfg = p.cfg, p.method, p.runtime, p.cfg.get("completeness") or {}
    start = clock()
    full = TrainSet(
        p.data.n_users, p.data.n_items, p.data.train, p.data.valid, features=p.data.info.get("features")
    )  # side features of the id universe (twotower)
    minus = full.without(p.request.rows)  # train minus F: methods, oracle and replica read this one view
    stages = StageMetrics(p.data, p.request, cfg, rt)
    rec: dict = {"threads": torch.get_num_threads(), "load_avg.start": os.getloadavg()[0]}
    if rec["threads"] > 1 and rec["load_avg.start"] + rec["threads"] > (os.cpu_count() or 1) + 0.5:
        log.warning(
            "%d torch threads on a machine already loaded %.1f of %d cores: multi-threaded timings under "
            "load are erratic (runtime.threads=1 keeps them comparable)",
            rec["threads"],
            rec["load_avg.start"],
            os.cpu_count() or 1,
        )
    # before anything is timed: compilation and first calls (warm-up), then this process's scale
    rec.update(warm_up(p.spec, full, rt, method.n_shards))
    calibrated = [calibrate(full, p.spec["submodel"], rt)]
    log.info("warm-up %s (%.2g s); calibration %.3g s", rec["warm_up"], rec["warm_up_s"], calibrated[0].span.wall)

    def oracle(trained=None, seed=p.spec["seed"]):
        spec = {**p.spec, "seed": seed}
        key = oracles.oracle_key(p.data.split_hash, p.request.content_hash(), spec)
        cal = calibrated[0] if len(calibrated) == 1 else calibrated[0].mean(calibrated[1])
        return oracles.retrain_oracle(minus, spec, key, rt, cfg.get("cache_dir"), trained=trained, calibration=cal)

    log.info("fit %s on %d rows", p.spec["method"]["name"], len(p.data.train))
    rec.update(method.fit(full).record())  # 3-4: M0
    log.info("fit done in %.3g s", rec["fit_s"])
    rec.update(measured(stages, "before", method.score, method, method.user_vectors))
    ref = oracle() if method.needs_reference and ccfg.get("retrain_oracle", True) else None
    if ref is not None:
        method.set_reference(ref[0].score, ref[0])
    costs = []
    for i, rows in enumerate(p.request.rounds):  # 5-6: M1, request by request
        costs.append(method.unlearn(rows))
        log.info(
            "request %d/%d: %d rows unlearned in %.3g s", i + 1, len(p.request.rounds), len(rows), costs[-1].span.wall
        )
    rec.update(UnlearnCost.record(costs))
    calibrated.append(calibrate(full, p.spec["submodel"], rt))
    cal = calibrated[0].mean(calibrated[1])
    rec.update(cal.record())
    rec["calibration.drift"] = calibrated[1].span.wall / calibrated[0].span.wall
    rec.update(measured(stages, "after", method.score, method, method.user_vectors))
    if ccfg.get("retrain_oracle", True):  # 7: oracles
        # retrain's model after its last request is a fit on train minus F: the oracle itself
        own = method.is_retrain_oracle()
        model, info = ref or oracle(trained=(method, costs[-1]) if own else None)
        rec.update(speedup(costs, info, cal, own))
        log.info(
            "oracle %s in %.3g s; speedup %.3g (%s)",
            "read from the cache, trained" if info["cached"] else "trained",
            rec["retrain_s"],
            rec["speedup"],
            rec["speedup.basis"],
        )
        rec.update(measured(stages, "retrain", model.score, method, model.user_vectors))
        # the seed floor: an oracle that differs only in its seed (cached like the oracle)
        t0 = clock()
        twin = oracle(seed=p.spec["seed"] + 1)[0] if ccfg.get("seed_floor", True) else None
        rec.update(oracle_gaps(p, minus, method, model, twin))
        rec.update((clock() - t0).keys("oracle_gaps"))  # what measuring them cost (twin fit included)
    if method.builds_exact_replica:
        rec.update(exact_gap(p, minus, method, rec["n_shards_retrained"], ccfg.get("exact_replica", True)))
    if ccfg.get("partition_drift", True):
        t0 = clock()
        rec.update(method.partition_drift(minus))
        rec.update((clock() - t0).keys("partition_drift"))  # a rebuilt partition (re-pretraining) costs
    rec.update(stages.finish())
    rec.update(method.describe())  # 8: the record
    rec.update(peak_memory(rt.device))
    rec.update((clock() - start).keys("lifecycle"))
    rec["load_avg.end"] = os.getloadavg()[0]
    log.info("run done in %.3g s", rec["lifecycle_s"])
    return rec


def measured(stages: StageMetrics, stage: str, *args) -> dict:
    """One stage's measurements, logged with their seconds."""
    t0 = clock()
    out = stages.measure(stage, *args)
    log.info("evaluated %s in %.2g s", stage, (clock() - t0).wall)
    return out


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


def describe(p: Prepared) -> dict:
    """Identity keys of the record."""
    d = p.cfg.get("deletion") or {}
    return {
        **p.data.summary(),
        "method": p.spec["method"]["name"],
        "method.family": p.method.family,
        "submodel": p.spec["submodel"]["name"],
        "partitioner": p.spec["partitioner"]["name"],
        "aggregator": p.spec["aggregator"]["name"],
        "n_shards": int(p.method.n_shards),
        "deletion.unit": p.request.unit,
        "deletion.selection": p.request.selection,
        "deletion.ratio": d.get("ratio") if d.get("count") is None else None,
        "deletion.count": d.get("count"),
        "deletion.rounds": len(p.request.rounds),
        "n_forget": int(p.request.n_forget),
        "n_forget_users": int(p.request.n_forget_users),
        "seed": p.spec["seed"],
        "device": str(p.runtime.device),
        **hyperparameters(p.spec),
    }


def hyperparameters(spec: dict) -> dict:
    """`cfg.<axis>.<key>` for every setting of every axis: what tells two variants of one method
    apart in a table (e.g. aggregator.per_group)."""
    out = {}
    for axis in AXES:
        for key, value in spec[axis].items():
            if key != "name":
                out[f"cfg.{axis}.{key}"] = (
                    value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
                )
    return out


def run(cfg: dict, runtime: Runtime) -> dict:
    """Library entry point: prepare (checks, nothing trained) then execute."""
    p = prepare(cfg, runtime)
    return {**describe(p), **execute(p)}


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
