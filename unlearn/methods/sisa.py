"""Retrain (the exact baseline) and SISA (random shards, averaged)."""
from __future__ import annotations

import numpy as np

from ..registry import METHODS
from .base import FitData, ShardedMethod


@METHODS.register("retrain")
class Retrain(ShardedMethod):
    """Unlearning fits the whole method again from scratch on train minus F (partition too).

    Exact by definition rather than by sharding, so no exact replica is fitted for it (it would be
    a second identical fit; determinism itself is covered by the tests)."""

    exact = False

    def unlearn(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        keep = self.retained.copy()
        keep[rows] = False
        kept = np.flatnonzero(keep)
        data = FitData(self.data.n_users, self.data.n_items, self.data.train.subset(kept), self.data.valid)
        full_train, full_keep = self.data.train, keep
        report = self.fit(data)
        # keep indexing in the original train rows, so later rounds address the same rows
        self.data = FitData(data.n_users, data.n_items, full_train, data.valid)
        row_shard = np.full(len(full_train), -1, dtype=np.int64)
        row_shard[kept] = self.partition.row_shard
        self.partition.row_shard = row_shard
        self.retained = full_keep
        return {
            "unlearn_s": report["fit_s"],
            "unlearn.shards_s": report["fit.shards_s"],
            "unlearn.aggregator_s": report["fit.aggregator_s"],
            "shards_retrained": list(range(self.partition.n_shards)),
        }


@METHODS.register("sisa")
class SISA(ShardedMethod):
    """Bourtoule et al. (2021): retrain only the shards the forget set touches, from their seeds."""
