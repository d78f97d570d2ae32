"""The retrain oracle: the `retrain` method with the same sub-model and seed on train minus F.

Cached by content hash (split, forget set, sub-model config, seed, the training code's version)
and shared between runs that need the same one; a file lock makes concurrent jobs of a sweep train
it once. Cache files hold tensors only (loaded with weights_only=True) and a JSON side file with
what the fit cost (wall and CPU seconds) and the calibration of the process that trained it, so a
later run can put those seconds on its own scale (`unlearn.calibration`)."""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from . import io
from .calibration import Calibration
from .code_version import training_code_version
from .data.interactions import TrainSet
from .methods.base import Method
from .methods.costs import UnlearnCost, as_span
from .metrics.timing import Span
from .registry import METHODS
from .runtime import Runtime

STATE_FORMAT = 3  # bump when the cached state's layout changes (3: CPU seconds and calibration)


def oracle_spec(spec: dict) -> dict:
    return {
        "method": {"name": "retrain"},
        "submodel": spec["submodel"],
        "partitioner": {"name": "none", "n_shards": 1},
        "aggregator": {"name": "none"},
        "seed": spec["seed"],
    }


def oracle_key(split_hash: str, forget_hash: str, spec: dict) -> str:
    return io.stable_hash(
        {
            "split": split_hash,
            "forget": forget_hash,
            "submodel": spec["submodel"],
            "seed": spec["seed"],
            "format": STATE_FORMAT,
            "code": training_code_version(),
        },
        16,
    )


def retrain_oracle(
    data: TrainSet,
    spec: dict,
    key: str,
    runtime: Runtime,
    cache_dir: str | None,
    trained: tuple[Method, UnlearnCost] | None = None,
    calibration: Calibration | None = None,
) -> tuple[Method, dict]:
    """(oracle method, info) for `data` = train minus F. info: `span` (what the fit cost), `epochs`,
    `cached` (read from the cache: `span` is another process's, measured under `calibration`, else
    None). `trained` is a model that already is the oracle (the retrain method, unlearned) with
    the cost of that unlearning: it is used, and cached where the cache has none, never replaced
    by a cached one. `calibration` is this process's, stored with a newly cached oracle."""
    ospec = oracle_spec(spec)
    if cache_dir is None:
        return _train(data, ospec, runtime, trained)
    base = Path(cache_dir) / "oracle" / key
    base.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base) + ".lock"):
        tensors, meta = base.with_suffix(".pt"), base.with_suffix(".json")
        if trained is None and tensors.is_file() and meta.is_file():
            model = METHODS.get("retrain")(ospec, runtime, cache_dir)
            model.load_state_dict(io.read_tensors(tensors), data)
            info = json.loads(meta.read_text())
            return model, {
                "span": Span(info["retrain_s"], info["retrain_cpu_s"]),
                "epochs": info["retrain_epochs"],
                "cached": True,
                "calibration": Calibration.from_record(info),
            }
        model, info = _train(data, ospec, runtime, trained)
        if not (tensors.is_file() and meta.is_file()):
            io.write_tensors(tensors, model.state_dict())
            io.write_json(
                meta,
                {
                    "retrain_s": info["span"].wall,
                    "retrain_cpu_s": info["span"].cpu,
                    "retrain_epochs": info["epochs"],
                    "code_version": training_code_version(),
                    **(calibration.record() if calibration else {}),
                },
            )
        return model, info


def _train(data, ospec, runtime, trained):
    if trained is not None:
        model, cost = trained
        return model, {"span": as_span(cost.seconds), "epochs": int(cost.epochs), "cached": False, "calibration": None}
    model = METHODS.get("retrain")(ospec, runtime)
    cost = model.fit(data)
    return model, {"span": as_span(cost.seconds), "epochs": int(cost.epochs), "cached": False, "calibration": None}
