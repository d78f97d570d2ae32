"""M0, the approximate family's starting model, cached: every approximate method (and both
regimes of an experiment) starts from the same fit of the same sub-model on the same rows with the
same seed, so one process trains it and the others load it. Keyed by the training and validation
rows' contents, the sub-model's settings, the seed and the training code's version; a file lock
makes concurrent jobs train it once. A hit reports the seconds of the fit that trained it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from filelock import FileLock

from ... import io
from ...code_version import training_code_version
from ...data.interactions import Interactions, TrainSet
from ...fit_report import FitReport
from ...metrics.timing import Span

FORMAT = 1


def _digest(part: Interactions, h) -> None:
    for a in (part.users, part.items, part.ratings):
        h.update(np.ascontiguousarray(a).tobytes())


def m0_key(data: TrainSet, submodel: dict, seed: int) -> str:
    h = hashlib.sha256()
    _digest(data.train, h)
    _digest(data.valid, h)
    return io.stable_hash(
        {
            "rows": h.hexdigest(),
            "n": [data.n_users, data.n_items],
            "submodel": submodel,
            "seed": seed,
            "code": training_code_version(),
            "format": FORMAT,
        },
        16,
    )


def fit_or_load(method, data: TrainSet) -> tuple[dict, Span, bool]:
    """(fit info, the fit's seconds, served from the cache) for `method.model`, which this sets."""
    if method.cache_dir is None:
        return (*_fit(method, data), False)
    base = Path(method.cache_dir) / "m0" / m0_key(data, method.spec["submodel"], method.model_seed())
    base.parent.mkdir(parents=True, exist_ok=True)
    tensors, meta = base.with_suffix(".pt"), base.with_suffix(".json")
    with FileLock(str(base) + ".lock"):
        if tensors.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            method.model = method.new_submodel()
            method.model.load_state_dict(io.read_tensors(tensors))
            method.model.to(method.runtime.device).requires_grad_(False).eval()
            return FitReport(**info["fit"], stop_reason="cached"), Span(info["wall_s"], info["cpu_s"]), True
        info, spent = _fit(method, data)
        io.write_tensors(tensors, {k: t.detach().cpu() for k, t in method.model.state_dict().items()})
        io.write_json(meta, {"fit": {"epochs": int(info.epochs)}, "wall_s": spent.wall, "cpu_s": spent.cpu})
        return info, spent, False


def _fit(method, data: TrainSet) -> tuple[FitReport, Span]:
    from ...metrics.timing import clock

    method.runtime.sync()
    t0 = clock()
    method.model = method.new_submodel()
    info = method.model.fit(data.select(np.ones(len(data.rows), dtype=bool)), method.model_seed())
    method.model.requires_grad_(False)
    method.runtime.sync()
    return info, clock() - t0
