"""RecEraser's greedy balanced assignment of units to anchors under a capacity (`balanced.py`, step
4), exact and vectorised, with the released pair-by-pair walk it reproduces (for tests)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError


def greedy_capacity_assign(scores: torch.Tensor, capacity: int) -> tuple[torch.Tensor, int]:
    """RecEraser's greedy balanced assignment, exactly, without walking the n*K pairs in Python.

    Reference semantics: sort all (unit, anchor) pairs by score ascending (ties: unit id, then
    anchor id); walk them; assign the unit to the anchor if the unit is still free and the anchor
    holds fewer than `capacity` units.

    Each anchor j takes its last member at some pair `p_j` of the walk (its full time, +inf if it
    never fills). Given the full times, a unit's anchor is simply its earliest pair (u, j) with
    (u, j) <= p_j. We start from p = +inf and repeat: every unit picks its earliest allowed pair;
    an anchor picked by more than `capacity` units gets p_j = its capacity-th smallest pick. The
    estimates only decrease and never drop below the true full times (a pick before the true
    p_j is the true assignment), so when no anchor is over capacity the picks are exactly the
    greedy walk's. Only units pushed out of an anchor are re-picked, so a round costs
    O(members of the over-full anchors) (a k-th value per anchor) plus O(K) per displaced unit.

    Returns (anchor of every unit, number of rounds).
    """
    n, k = scores.shape
    if capacity * k < n:
        raise ConfigError(f"capacity {capacity} x {k} shards cannot hold {n} units.")
    t_score = torch.full((k,), torch.inf, dtype=scores.dtype)  # full time of each anchor: (score, unit)
    t_unit = torch.full((k,), n, dtype=torch.long)
    choice = torch.argmin(scores, dim=1)  # first minimum: lower anchor id on ties
    picked = scores.gather(1, choice[:, None]).squeeze(1)
    rounds = 1
    while True:
        counts = torch.bincount(choice, minlength=k)
        over = torch.nonzero(counts > capacity).flatten().tolist()
        if not over:
            return choice, rounds
        displaced = []
        for j in over:  # a loop over anchors, each step linear in the anchor's members
            members = torch.nonzero(choice == j).flatten()  # ascending unit id
            vals = picked[members]
            thr = torch.kthvalue(vals, capacity).values
            below, tied = vals < thr, vals == thr
            last = members[tied][capacity - int(below.sum()) - 1]  # ties broken by the lower unit id
            t_score[j], t_unit[j] = thr, last
            displaced.append(members[(vals > thr) | (tied & (members > last))])
        # only displaced units change: everyone else's pick stays allowed and earliest
        d = torch.cat(displaced)
        sub = scores[d]
        allowed = (sub < t_score) | ((sub == t_score) & (d[:, None] <= t_unit))
        c = torch.argmin(torch.where(allowed, sub, torch.full_like(sub, torch.inf)), dim=1)
        if not bool(allowed.gather(1, c[:, None]).all()):  # pragma: no cover - excluded by the proof
            raise RuntimeError("greedy_capacity_assign: a unit has no anchor with room")
        choice[d] = c
        picked[d] = sub.gather(1, c[:, None]).squeeze(1)
        rounds += 1


def greedy_capacity_assign_reference(scores: np.ndarray, capacity: int) -> np.ndarray:
    """The released code's walk, one pair at a time (slow; for tests)."""
    n, k = scores.shape
    order = np.lexsort((np.tile(np.arange(k), n), np.repeat(np.arange(n), k), scores.ravel()))
    out = np.full(n, -1, dtype=np.int64)
    size = np.zeros(k, dtype=np.int64)
    for flat in order:
        u, j = divmod(int(flat), k)
        if out[u] < 0 and size[j] < capacity:
            out[u] = j
            size[j] += 1
    return out
