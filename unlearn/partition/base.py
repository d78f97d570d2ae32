"""Partitions: which shard each training row belongs to. Fixed at fit time, never recomputed
by unlearning."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..data.interactions import Interactions
from ..data.units import unit_ids
from ..errors import ConfigError
from ..runtime import CPU, Runtime


@dataclass
class Partition:
    unit: str  # none, or one of data.units.UNITS
    n_shards: int
    row_shard: np.ndarray  # shard of every training row
    unit_shard: np.ndarray | None = None  # shard of every user (unit user) or item (unit item)
    uses_forget: bool = False  # built from something trained on data that included F
    info: dict = field(default_factory=dict)

    def rows(self, shard: int) -> np.ndarray:
        return np.flatnonzero(self.row_shard == shard)

    def touched(self, rows: np.ndarray) -> list[int]:
        """Shards holding any of `rows` (rows outside the partition, marked -1, touch none)."""
        return sorted(int(s) for s in np.unique(self.row_shard[rows]) if s >= 0)

    def over_rows(self, row_index: np.ndarray, n_rows: int) -> "Partition":
        """This partition of the rows `row_index` (of n_rows), as a partition of all n_rows: the
        other rows belong to no shard (-1)."""
        if len(row_index) == n_rows:
            return self
        row_shard = np.full(n_rows, -1, dtype=np.int64)
        row_shard[row_index] = self.row_shard
        return Partition(self.unit, self.n_shards, row_shard, self.unit_shard, self.uses_forget, self.info)

    def sizes(self, train: Interactions) -> list[int]:
        """Shard sizes in units (users, items, or interactions)."""
        ids = unit_ids(self.unit, train)
        return [int(len(np.unique(ids[self.row_shard == s]))) for s in range(self.n_shards)]


class Partitioner(ABC):
    """Subclasses set `unit` and implement `assign`."""

    unit = "none"
    defaults: dict = {"n_shards": 1}
    registered_name = "partitioner"

    def __init__(self, cfg: dict | None = None, runtime: Runtime = CPU, cache_dir: str | None = None):
        self.cfg = {**self.defaults, **{k: v for k, v in (cfg or {}).items() if k != "name"}}
        self.runtime = runtime
        self.cache_dir = cache_dir
        self.check_config()

    def check_config(self) -> None:
        """Checks that need no data (run at construction, before anything is loaded or trained)."""
        if self.n_shards < 1:
            raise ConfigError(f"partitioner.n_shards must be at least 1, got {self.n_shards}.")

    @property
    def n_shards(self) -> int:
        return int(self.cfg["n_shards"])

    def n_units(self, train: Interactions, n_users: int, n_items: int) -> int:
        return int(len(np.unique(unit_ids(self.unit, train))))

    def validate(self, train: Interactions, n_users: int, n_items: int) -> None:
        k = self.n_shards
        n = self.n_units(train, n_users, n_items)
        if k > n:
            raise ConfigError(f"partitioner.n_shards={k} is larger than the number of {self.unit}s to split ({n}).")

    def partition(self, train: Interactions, n_users: int, n_items: int, seed: int) -> Partition:
        self.validate(train, n_users, n_items)
        return self.assign(train, n_users, n_items, seed)

    @abstractmethod
    def assign(self, train, n_users, n_items, seed) -> Partition:
        """The partition of `train` (validated) drawn from `seed`."""


def rows_from_units(unit: str, train: Interactions, unit_shard: np.ndarray) -> np.ndarray:
    """The shard of every row, from the shard of its unit (user or item)."""
    return unit_shard[unit_ids(unit, train)]


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same units (1: the same grouping up to labels)."""
    if len(a) < 2:
        return 1.0
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.float64)
    np.add.at(table, (ia, ib), 1.0)
    pairs = lambda x: (x * (x - 1) / 2.0).sum()  # noqa: E731
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (len(a) * (len(a) - 1) / 2.0)
    best = (rows + cols) / 2.0
    return 1.0 if best == expected else float((index - expected) / (best - expected))


def partition_drift(kept: Partition, rebuilt: Partition, train: Interactions) -> dict:
    """How far the partition in use (`kept`, built at fit time) is from one rebuilt on the retained
    rows `train` (train minus F) with the same seed, over the retained units (users or items still
    in `train`; for interaction partitions the retained rows, which `train`'s partitions index
    through `row_index`): `partition_drift` = fraction of them whose shard differs,
    `partition_drift.ari` = adjusted Rand index of the two groupings."""
    if kept.unit_shard is not None and rebuilt.unit_shard is not None:
        ids = np.unique(unit_ids(kept.unit, train))
        a, b = kept.unit_shard[ids], rebuilt.unit_shard[ids]
    else:
        keep = rebuilt.row_shard >= 0
        a, b = kept.row_shard[keep], rebuilt.row_shard[keep]
    return {
        "partition_drift": float(np.mean(a != b)) if len(a) else 0.0,
        "partition_drift.ari": adjusted_rand_index(a, b),
    }


from ..metrics.keys import KEYS  # noqa: E402

KEYS.declare("partitioner", "partitioner", group="identity", doc="the partitioner's registered name")
KEYS.declare(
    "partition_drift",
    "partition drift",
    sub="moved",
    better="lower",
    group="completeness",
    doc="share of retained units whose shard differs from a partition rebuilt without F",
)
KEYS.declare(
    "partition_drift.ari",
    "partition drift",
    sub="ARI",
    better="higher",
    group="completeness",
    doc="adjusted Rand index of the partition in use and one rebuilt without F (1: the same grouping)",
)
