"""The retrain oracle: the `retrain` method with the same sub-model and seed on train minus F.

Cached by content hash (split, forget set, sub-model config, seed) and shared between runs that
need the same one; a file lock makes concurrent jobs of a sweep train it once. Cache files hold
tensors only (loaded with weights_only=True) and a JSON side file."""
from __future__ import annotations

import json
import time
from pathlib import Path

from filelock import FileLock

from . import io
from .methods.base import FitData, Method
from .registry import METHODS
from .runtime import Runtime


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
                           "seed": spec["seed"]}, 16)


def is_oracle(spec: dict) -> bool:
    return (spec["method"]["name"] == "retrain" and spec["partitioner"]["name"] == "none"
            and spec["aggregator"]["name"] == "none")


def retrain_oracle(data: FitData, spec: dict, key: str, runtime: Runtime, cache_dir: str | None,
                   trained: Method | None = None, trained_s: float | None = None) -> tuple[Method, dict]:
    """(oracle method, info with retrain_s and `cached`). `trained` reuses a model that already is
    the oracle (the retrain method's own unlearned model)."""
    ospec = oracle_spec(spec)
    if cache_dir is None:
        return _train(data, ospec, runtime, trained, trained_s)
    base = Path(cache_dir) / "oracle" / key
    base.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base) + ".lock"):
        tensors, meta = base.with_suffix(".pt"), base.with_suffix(".json")
        if tensors.is_file() and meta.is_file():
            model = METHODS.get("retrain")(ospec, runtime, cache_dir)
            model.load_state_dict(io.read_tensors(tensors), data)
            info = json.loads(meta.read_text())
            return model, {**info, "cached": True}
        model, info = _train(data, ospec, runtime, trained, trained_s)
        io.write_tensors(tensors, model.state_dict())
        io.write_json(meta, {k: v for k, v in info.items() if k != "cached"})
        return model, info


def _train(data, ospec, runtime, trained, trained_s):
    if trained is not None:
        return trained, {"retrain_s": float(trained_s), "retrain_epochs": int(trained.shard_info[0]["epochs"]),
                         "cached": False}
    model = METHODS.get("retrain")(ospec, runtime)
    t0 = time.perf_counter()
    report = model.fit(data)
    return model, {"retrain_s": float(report.get("fit_s", time.perf_counter() - t0)),
                   "retrain_epochs": int(model.shard_info[0]["epochs"]), "cached": False}
