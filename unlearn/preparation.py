"""What a run is before anything is trained: the checked config (axes, seed, probes, the method's
settings), the loaded data, the drawn forget set and the unfitted method (`Prepared`), and the
identity keys of the record that follow from them (`describe`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .data.deletion import DeletionRequest
from .data.interactions import Dataset, TrainSet
from .data.load import load_dataset
from .data.request_kinds import prepare_request
from .errors import ConfigError
from .methods.base import Method
from .metrics.timing import clock
from .registry import METHODS, PROBES
from .runtime import CPU, Runtime

log = logging.getLogger("unlearn.lifecycle")  # the run's log lines keep the lifecycle's name
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
