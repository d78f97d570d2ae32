"""Retrain (the exact baseline) and SISA (random shards, averaged)."""

from __future__ import annotations

from ..registry import METHODS
from .base import ShardedMethod
from .costs import UnlearnCost


@METHODS.register("retrain")
class Retrain(ShardedMethod):
    """Unlearning fits the whole method again from scratch on train minus F (partition too).

    Exact by definition rather than by sharding, so no exact replica is fitted for it (it would be
    a second identical fit; determinism itself is covered by the tests)."""

    builds_exact_replica = False

    def is_retrain_oracle(self) -> bool:
        return self.partitioner.registered_name == "none" and self.spec["aggregator"]["name"] == "none"

    def unlearn(self, rows):
        cost = self.fit(self.data.without(rows))
        return UnlearnCost(
            seconds=cost.seconds,
            shards_s=cost.shards_s,
            aggregator_s=cost.aggregator_s,
            shards_retrained=list(range(self.partition.n_shards)),
            epochs=cost.epochs,
        )


@METHODS.register("sisa")
class SISA(ShardedMethod):
    """Bourtoule et al. (2021): retrain only the shards the forget set touches, from their seeds."""
