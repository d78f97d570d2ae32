"""Warm-up: run a method's code once on a small slice of the data before anything is timed, so
JIT compilation (numba kernels, loaded or compiled), first torch calls and lazily built state are
paid outside every timed region. The warm-up model is thrown away; nothing it does reaches the
run's models, seeds or caches."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from .data.interactions import TrainSet
from .metrics.timing import clock
from .registry import METHODS

log = logging.getLogger(__name__)
CAPPED = ("epochs", "meta_epochs", "iterations", "max_iter", "max_sweeps", "sinkhorn_itermax")
CAP = 2  # each capped setting's value in the warm-up
MIN_USERS = 64  # users of the slice (at least 8 per shard)


def _capped(cfg):
    if isinstance(cfg, dict):
        return {
            k: (min(v, CAP) if k in CAPPED and isinstance(v, int) and not isinstance(v, bool) else _capped(v))
            for k, v in cfg.items()
        }
    return cfg


def slice_of(data: TrainSet, n_shards: int) -> TrainSet:
    """The rows of the first users with training rows (at least 8 per shard), over the same id
    universe, with their validation rows."""
    users = np.unique(data.rows.users)[: max(MIN_USERS, 8 * int(n_shards))]
    keep = np.zeros(data.n_users, dtype=bool)
    keep[users] = True
    return TrainSet(
        data.n_users, data.n_items, data.rows.of_users(keep), data.all_valid.of_users(keep), features=data.features
    )


def warm_up(spec: dict, data: TrainSet, runtime, n_shards: int) -> dict:
    """Fit the method on a slice with capped budgets, unlearn one user's rows and score. Returns
    `warm_up_s` and `warm_up` (ok, or why it failed: the run goes on, its first timed region then
    carries the warm-up)."""
    t0 = clock()
    status = "ok"
    try:
        small = slice_of(data, n_shards)
        method = METHODS.get(spec["method"]["name"])(_capped(spec), replace(runtime, progress=False), None)
        method.validate(small)
        method.fit(small)
        first = small.rows.users[0]
        method.unlearn(np.flatnonzero(small.rows.users == first))
        import torch

        method.score(torch.arange(min(8, data.n_users), device=runtime.device))
    except Exception as exc:  # noqa: BLE001 - the warm-up must never stop a run; the record says why
        status = f"failed: {type(exc).__name__}: {exc}"
        log.warning("warm-up %s; the first timed fit includes first calls and compilation", status)
    return {"warm_up": status, **(clock() - t0).keys("warm_up")}
