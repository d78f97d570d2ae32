"""Aggregators with nothing to learn: `none`, `mean`, `own`."""

from __future__ import annotations

import torch

from ..registry import AGGREGATORS
from .base import Aggregator, shard_user_vectors


@AGGREGATORS.register("none")
class Single(Aggregator):
    single_shard = True

    def score(self, shards, users):
        return shards[0].score(users)

    def representation(self, shards, users):
        vecs = shard_user_vectors(shards, users)
        return None if vecs is None else {"": vecs[0]}


@AGGREGATORS.register("mean")
class Mean(Aggregator):
    """Average of the shard scores (SISA, EEMU, UltraRE's released code)."""

    def score(self, shards, users):
        total = shards[0].score(users).clone()
        for m in shards[1:]:
            total += m.score(users)
        return total / len(shards)

    def representation(self, shards, users):
        """The shards' user vectors side by side: the mean of the K dot products is the dot
        product of the concatenated user and item vectors (over K)."""
        vecs = shard_user_vectors(shards, users)
        return None if vecs is None else {"": torch.cat(vecs, 1)}


@AGGREGATORS.register("own")
class Own(Aggregator):
    """Each user is scored by the shard that holds the user (CURE4Rec's per-group protocol)."""

    requires_unit = ("user",)

    def bind(self, shards, partition):
        super().bind(shards, partition)
        self._owner = torch.as_tensor(partition.unit_shard).clamp(min=0)

    def score(self, shards, users):
        owner = self._owner.to(users.device)[users]
        out = torch.empty(len(users), shards[0].n_items, device=users.device)
        for s in torch.unique(owner).tolist():
            rows = (owner == s).nonzero().flatten()
            out[rows] = shards[s].score(users[rows])
        return out

    def representation(self, shards, users):
        vecs = shard_user_vectors(shards, users)
        if vecs is None:
            return None
        owner = self._owner.to(users.device)[users]
        return {"": torch.stack(vecs)[owner, torch.arange(len(users), device=users.device)]}
