"""`none` (one shard) and `random` (SISA's equal-size random shards)."""

from __future__ import annotations

import numpy as np

from ..data.units import UNITS, n_unit_ids, unit_ids
from ..errors import ConfigError
from ..registry import PARTITIONERS
from ..seeding import numpy_rng
from .base import Partition, Partitioner, rows_from_units


@PARTITIONERS.register("none")
class NoPartition(Partitioner):
    unit = "none"
    defaults = {"n_shards": 1}

    @property
    def n_shards(self) -> int:
        """Always one shard; a sweep-wide `partitioner.n_shards` (e.g. for SISA) does not apply."""
        return 1

    def assign(self, train, n_users, n_items, seed):
        return Partition("none", 1, np.zeros(len(train), dtype=np.int64))


@PARTITIONERS.register("random")
class RandomPartition(Partitioner):
    """Units shuffled with the partition's own seed and dealt into K equal-size shards."""

    defaults = {"n_shards": 10, "unit": "user"}

    def check_config(self):
        super().check_config()
        if self.cfg["unit"] not in UNITS:
            raise ConfigError(f"Unknown partitioner.unit '{self.cfg['unit']}'. Valid: {', '.join(UNITS)}.")
        self.unit = self.cfg["unit"]

    def assign(self, train, n_users, n_items, seed):
        rng = numpy_rng(seed, "partition", "random")
        k = self.n_shards
        if self.unit == "interaction":
            perm = rng.permutation(len(train))
            row_shard = np.empty(len(train), dtype=np.int64)
            row_shard[perm] = np.arange(len(train)) % k
            return Partition("interaction", k, row_shard)
        n = n_unit_ids(self.unit, n_users, n_items, train)
        present = np.flatnonzero(np.bincount(unit_ids(self.unit, train), minlength=n))
        unit_shard = np.full(n, -1, dtype=np.int64)
        unit_shard[rng.permutation(present)] = np.arange(len(present)) % k
        return Partition(self.unit, k, rows_from_units(self.unit, train, unit_shard), unit_shard)
