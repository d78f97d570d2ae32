"""The retrain oracle: the `retrain` method with the same sub-model and seed on train minus F.

Cached by content hash (split, forget set, sub-model config, seed) and shared between runs that
need the same one; a file lock makes concurrent jobs of a sweep train it once. Cache files hold
tensors only (loaded with weights_only=True) and a JSON side file."""
from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from . import io
from .data.interactions import TrainSet
from .methods.base import Method
from .methods.costs import UnlearnCost
from .registry import METHODS
from .runtime import Runtime

STATE_FORMAT = 2  # bump when the cached state's layout changes (2: kept mask, full-row partition)


def oracle_spec(spec: dict) -> dict:
    return {
        "method": {"name": "retrain"},
        "submodel": spec["submodel"],
        "partitioner": {"name": "none", "n_shards": 1},
        "aggregator": {"name": "none"},
        "seed": spec["seed"],
    }


def oracle_key(split_hash: str, forget_hash: str, spec: dict) -> str:
    return io.stable_hash({"split": split_hash, "forget": forget_hash, "submodel": spec["submodel"],
                           "seed": spec["seed"], "format": STATE_FORMAT}, 16)


def retrain_oracle(data: TrainSet, spec: dict, key: str, runtime: Runtime, cache_dir: str | None,
                   trained: tuple[Method, UnlearnCost] | None = None) -> tuple[Method, dict]:
    """(oracle method, info with retrain_s, retrain_epochs and `cached`) for `data` = train minus F.
    `trained` reuses a model that already is the oracle (the retrain method, unlearned once) with
    the cost of that unlearning."""
    ospec = oracle_spec(spec)
    if cache_dir is None:
        return _train(data, ospec, runtime, trained)
    base = Path(cache_dir) / "oracle" / key
    base.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base) + ".lock"):
        tensors, meta = base.with_suffix(".pt"), base.with_suffix(".json")
        if tensors.is_file() and meta.is_file():
            model = METHODS.get("retrain")(ospec, runtime, cache_dir)
            model.load_state_dict(io.read_tensors(tensors), data)
            info = json.loads(meta.read_text())
            return model, {**info, "cached": True}
        model, info = _train(data, ospec, runtime, trained)
        io.write_tensors(tensors, model.state_dict())
        io.write_json(meta, {k: v for k, v in info.items() if k != "cached"})
        return model, info


def _train(data, ospec, runtime, trained):
    if trained is not None:
        model, cost = trained
        return model, {"retrain_s": float(cost.seconds), "retrain_epochs": int(cost.epochs), "cached": False}
    model = METHODS.get("retrain")(ospec, runtime)
    cost = model.fit(data)
    return model, {"retrain_s": float(cost.seconds), "retrain_epochs": int(cost.epochs), "cached": False}
