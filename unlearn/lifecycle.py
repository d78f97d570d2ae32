"""One run (SPEC §2): data -> forget set -> fit -> evaluate -> unlearn -> evaluate -> oracles ->
completeness -> one flat record. Takes plain dicts; knows nothing of Hydra."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from . import oracle as oracle_mod
from .data.deletion import DeletionRequest, draw
from .data.interactions import Dataset, Interactions
from .data.load import load_dataset
from .errors import ConfigError
from .methods.base import FitData, Method
from .metrics.completeness import MembershipProbe, forget_hits, score_gaps
from .metrics.ranking import RankingEvaluator
from .metrics.timing import peak_memory
from .registry import METHODS, PROBES
from .runtime import Runtime

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
    spec["seed"] = int(cfg.get("seed", 0))
    return spec


def prepare(cfg: dict, runtime: Runtime) -> Prepared:
    """Load data, draw F, build and check the method. Raises UserError; trains nothing."""
    spec = method_spec(cfg)
    method_cls = METHODS.get(spec["method"]["name"])
    for name in (cfg.get("eval") or {}).get("probes") or []:
        PROBES.get(name)
    data = load_dataset(cfg["dataset"], cfg.get("cache_dir"))
    request = draw(data.train, data.n_users, data.n_items, cfg.get("deletion") or {}, spec["seed"])
    method = method_cls(spec, runtime, cfg.get("cache_dir"))
    partitioner = getattr(method, "partitioner", None)
    if partitioner is not None:
        partitioner.validate(data.train, data.n_users, data.n_items)
    return Prepared(cfg, data, request, method, runtime)


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in metrics.items() if k != "n_eval_users"}


def execute(p: Prepared) -> dict:
    cfg, data, req, method, rt = p.cfg, p.data, p.request, p.method, p.runtime
    ecfg = cfg.get("eval") or {}
    ccfg = cfg.get("completeness") or {}
    ks = list(ecfg.get("ks", [10, 20, 50]))
    seed = p.spec["seed"]
    n_u, n_i, dev, batch = data.n_users, data.n_items, rt.device, rt.eval_batch
    wall0 = time.perf_counter()

    retained_rows = np.setdiff1d(np.arange(len(data.train)), req.rows)
    retained = data.train.subset(retained_rows)
    forget = data.train.subset(req.rows)
    gone = np.zeros(n_u, dtype=bool)
    if req.unit == "user":
        gone[req.deleted_users] = True
    test_after = data.test.of_users(~gone)
    valid_after = data.valid.of_users(~gone)

    def evaluator(exclude: Interactions, target: Interactions) -> RankingEvaluator:
        return RankingEvaluator(n_u, n_i, exclude, target, ks, dev, batch, ecfg.get("ndcg_ideal", "capped"),
                                active_top=float(ecfg.get("active_top", 0.05)))

    ev_before, ev_after = evaluator(data.train, data.test), evaluator(retained, test_after)
    mia = MembershipProbe(forget, Interactions.concat([data.valid, data.test]), n_u, n_i, seed,
                          int(ccfg.get("mia_max_pairs", 20000)), dev, batch)
    fk = int(ccfg.get("forget_k", 20))
    probes = [PROBES.get(name)(data, req, rt) for name in ecfg.get("probes") or []]

    def completeness(stage: str, score_fn) -> dict:
        out = {f"{k}.{stage}": v for k, v in mia.measure(score_fn).items()}
        hits = forget_hits(score_fn, n_u, n_i, retained, forget, sorted({fk, *ks}), dev, batch)
        out.update({f"{k}.{stage}": v for k, v in hits.items()})
        for probe in probes:
            out.update(_prefixed(stage, probe.measure(stage, score_fn, method)))
        return out

    rec: dict = {}
    full = FitData(n_u, n_i, data.train, data.valid)
    minus = FitData(n_u, n_i, retained, valid_after)
    okey = oracle_mod.oracle_key(data.split_hash, req.content_hash(), p.spec)

    # 3-4: the original model M0
    log.info("fit %s on %d rows", p.spec["method"]["name"], len(data.train))
    rec.update(method.fit(full))
    rec.update(_prefixed("before", ev_before.evaluate(method.score)))
    rec.update(completeness("before", method.score))

    oracle = None
    if getattr(method, "wants_reference", False) and ccfg.get("retrain_oracle", True):
        oracle, oinfo = oracle_mod.retrain_oracle(minus, p.spec, okey, rt, cfg.get("cache_dir"))
        method.set_reference(oracle.score)

    # 5-6: unlearning, request after request
    costs, touched = [], set()
    for rows in req.rounds:
        r = method.unlearn(rows)
        costs.append(float(r["unlearn_s"]))
        touched.update(int(s) for s in r.get("shards_retrained", []))
        for key, value in r.items():
            if key.startswith("unlearn.") and isinstance(value, (int, float)):
                rec[key] = rec.get(key, 0.0) + float(value)
    rec["unlearn_s"] = float(sum(costs))
    rec["unlearn.request_s"] = costs
    rec["shards_retrained"] = sorted(touched)
    rec["n_shards_retrained"] = len(touched)
    rec.update(_prefixed("after", ev_after.evaluate(method.score)))
    rec.update(completeness("after", method.score))

    # 7: oracles
    if ccfg.get("retrain_oracle", True):
        if oracle is None:
            reuse = oracle_mod.is_oracle(p.spec) and len(req.rounds) == 1
            oracle, oinfo = oracle_mod.retrain_oracle(
                minus, p.spec, okey, rt, cfg.get("cache_dir"),
                trained=method if reuse else None, trained_s=rec["unlearn_s"] if reuse else None)
        rec["retrain_s"] = oinfo["retrain_s"]
        if "retrain_epochs" in oinfo:  # epochs, or sweeps for ALS, of the oracle's fit
            rec["retrain_epochs"] = oinfo["retrain_epochs"]
        rec["retrain_cached"] = bool(oinfo.get("cached", False))
        rec["speedup"] = rec["retrain_s"] / rec["unlearn_s"] if rec["unlearn_s"] > 0 else float("inf")
        rec.update(_prefixed("retrain", ev_after.evaluate(oracle.score)))
        rec.update(completeness("retrain", oracle.score))
        rec["retrain_gap"] = score_gaps(method.score, oracle.score, n_u, batch, dev)["rel_fro"]
    if getattr(method, "exact", False) and ccfg.get("exact_replica", True):
        t0 = time.perf_counter()
        replica = method.exact_replica(minus)
        rec["exact_replica_s"] = time.perf_counter() - t0
        rec["exact_gap"] = score_gaps(method.score, replica.score, n_u, batch, dev)["max_abs"]
        del replica
    for probe in probes:
        rec.update(probe.finish())

    rec.update(method.record_extra())
    rec.setdefault("n_shards", 1)
    rec.setdefault("partition_uses_forget", False)
    rec.update(peak_memory(rt.device))
    rec["lifecycle_s"] = time.perf_counter() - wall0
    return rec


def describe(p: Prepared) -> dict:
    """Identity keys of the record (SPEC §6)."""
    d = p.cfg.get("deletion") or {}
    return {
        **p.data.summary(),
        "method": p.spec["method"]["name"],
        "submodel": p.spec["submodel"]["name"],
        "partitioner": p.spec["partitioner"]["name"],
        "aggregator": p.spec["aggregator"]["name"],
        "n_shards": int(p.method.partitioner.n_shards if hasattr(p.method, "partitioner") else 1),
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
                out[f"cfg.{axis}.{key}"] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out


def run(cfg: dict, runtime: Runtime) -> dict:
    """Library entry point: prepare (checks, nothing trained) then execute."""
    p = prepare(cfg, runtime)
    return {**describe(p), **execute(p)}
