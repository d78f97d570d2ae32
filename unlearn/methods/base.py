"""The method contract. This docstring is the one place a new method's author reads.

A method is a class registered by name (`@METHODS.register("name")`) with:

- `__init__(spec, runtime, cache_dir)`: `spec` holds the composed axes `method`, `submodel`,
  `partitioner`, `aggregator` (each a dict with `name`) and `seed`. Check settings here and raise
  `ConfigError`; `allowed` (axis -> names) is checked for you, before any data is loaded.
- `fit(data: TrainSet) -> FitCost`: train M0 on `data.train` (validation: `data.valid`, never
  test). Draw every random number from generators seeded by `unlearn.seeding.derive_seed(seed,
  component, shard)`.
- `unlearn(rows) -> UnlearnCost`: forget the training rows `rows` (indices into `data.rows`),
  starting from the current state. Called once per request of a stream. Keep `self.data` as
  `data.without(rows)`: the method's retained data, which `score` may read.
- `score(users) -> (len(users) x n_items)` scores on `users.device`, without gradients: a new
  tensor (or a view), never one the method keeps, since evaluation masks it in place.
- `describe() -> dict`: method-specific record keys (defaults: `n_shards`, `partition_uses_forget`).
- `user_vectors(users) -> {"": vectors} | None`: the final user representations that scores are
  dot products with (the `forgotten_collapse` probe); None (the default) for a method without.
- `partition_drift(data) -> dict`: `partition_drift` / `partition_drift.ari` of the partition in
  use against one rebuilt on `data` (train minus F); {} (the default) without a partition.
- `state_dict()` / `load_state_dict(state, data)`: tensors only, with every shape needed to
  rebuild the method (only needed by methods that serve as the cached retrain oracle).

Declared capabilities (class attributes; the lifecycle reads nothing else):

- `builds_exact_replica`: exact by construction; the lifecycle fits `exact_replica(data minus F)`
  and records `exact_gap` (max score difference, 0 for an exact method).
- `needs_reference`: the lifecycle fits the retrain oracle before unlearning and hands its score
  function and the oracle itself to `set_reference(score_fn, oracle)` (e.g. to trace convergence
  outside the timed region).
- `partitioner`: None, or the partitioner whose `validate` runs on the data before training.
- `family`: `exact` (the unlearned model is retraining's, by construction or by converging to its
  objective) or `approximate` (an update that estimates it); tables and figures mark them apart.
- `is_retrain_oracle()`: this very model is the retrain oracle once unlearned (so it is not
  trained twice).

`ShardedMethod` below is the whole SISA family: partition -> one sub-model per shard, each from
its own seed -> aggregator. Unlearning retrains the shards the forget rows touch (from the same
seeds) and refits a trainable aggregator; every other shard is left bit-identical. Its shards'
bookkeeping (training one shard or the aggregator, `describe`, caching) is in `shard_state.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..metrics.timing import Span
from ..registry import AGGREGATORS, PARTITIONERS, SUBMODELS
from ..runtime import CPU, Runtime
from ..seeding import derive_seed
from .costs import FitCost, UnlearnCost
from .shard_state import ShardState

# keep: the partition built at fit time stays (the papers'); rebuild: a partition built from
# embeddings that saw F is rebuilt on train minus F at every request (re-pretraining included)
REFRESH = ("keep", "rebuild")


class Method(ABC):
    """Base class of every method; see the module docstring for the contract."""

    registered_name = "method"
    family = "exact"  # exact: what it unlearns to is retraining's model (or its objective); else approximate
    builds_exact_replica = False
    needs_reference = False
    partitioner = None
    allowed: dict = {}  # axis -> allowed names, checked before any training

    def __init__(self, spec: dict, runtime: Runtime = CPU, cache_dir: str | None = None):
        self.spec = spec
        self.cfg = {k: v for k, v in spec.get("method", {}).items() if k != "name"}
        self.seed = int(spec.get("seed", 0))
        self.runtime = runtime
        self.cache_dir = cache_dir
        self.data: TrainSet | None = None
        self.check()

    def check(self) -> None:
        for axis, names in self.allowed.items():
            got = self.spec.get(axis, {}).get("name")
            if got not in names:
                raise ConfigError(
                    f"method={self.registered_name} cannot use {axis}={got}. Valid {axis} choices "
                    f"for it: {', '.join(names)}."
                )

    def validate(self, data: TrainSet) -> None:
        """Checks against the data, before any training (e.g. more shards than units)."""
        if self.partitioner is not None:
            self.partitioner.validate(data.train, data.n_users, data.n_items)

    @property
    def n_shards(self) -> int:
        return 1 if self.partitioner is None else int(self.partitioner.n_shards)

    def is_retrain_oracle(self) -> bool:
        return False

    @abstractmethod
    def fit(self, data: TrainSet) -> FitCost:
        """Train on `data` (M0)."""

    @abstractmethod
    def unlearn(self, rows: np.ndarray) -> UnlearnCost:
        """Forget the training rows `rows`."""

    @abstractmethod
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` over every item."""

    def user_vectors(self, users: torch.Tensor) -> dict | None:
        """The final user representations of `users` ({"": vectors}, more keys for other readings),
        or None for a method without user vectors (the `forgotten_collapse` probe)."""
        return None

    def set_reference(self, score_fn, oracle: "Method | None" = None) -> None:
        """The retrain oracle's score function and the oracle (called when `needs_reference`)."""

    def exact_replica(self, data: TrainSet) -> "Method":
        """The same method fitted from scratch on `data` (train minus F) with this method's
        partition and seeds (called when `builds_exact_replica`)."""
        raise NotImplementedError(f"method {self.registered_name} builds no exact replica")

    def partition_drift(self, data: TrainSet) -> dict:
        """`partition_drift` and `partition_drift.ari` of the partition in use against one rebuilt on
        `data` (train minus F); {} for a method without a partition."""
        return {}

    def describe(self) -> dict:
        """Method-specific keys for the result record."""
        return {"n_shards": self.n_shards, "partition_uses_forget": False}

    def state_dict(self) -> dict:
        raise NotImplementedError(f"method {self.registered_name} cannot be cached")

    def load_state_dict(self, state: dict, data: TrainSet) -> None:
        raise NotImplementedError(f"method {self.registered_name} cannot be cached")


class ShardedMethod(ShardState, Method):
    """The SISA family (see the module docstring): the fit / unlearn flow. Training one shard or the
    aggregator, `describe` and caching come from `ShardState` (`shard_state.py`)."""

    builds_exact_replica = True

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        self.submodel_cls = SUBMODELS.get(spec["submodel"]["name"])
        self.partitioner = PARTITIONERS.get(spec["partitioner"]["name"])(
            spec["partitioner"], runtime=runtime, cache_dir=cache_dir
        )
        self._agg_cls = AGGREGATORS.get(spec["aggregator"]["name"])
        self._agg_cls(spec["aggregator"]).check(self.partitioner.unit, self.partitioner.n_shards)
        self.shards: list = []
        self.shard_info: list = []
        self.aggregator = None
        self.aggregator_info: dict = {}  # the aggregator's last fit report
        self.partition = None
        self.refresh = str(self.cfg.get("partition_refresh", "keep"))
        if self.refresh not in REFRESH:
            raise ConfigError(f"Unknown method.partition_refresh '{self.refresh}'. Valid: {', '.join(REFRESH)}.")

    # -- the method API -------------------------------------------------------------
    def fit(self, data: TrainSet, partition=None) -> FitCost:
        """Fit on `data`; `partition` (over `data.rows`) is given only by the exact replica."""
        self.data = data
        if partition is None:
            self.partition, pretrain_s, cluster_s = self.build_partition(data)
        else:
            self.partition, pretrain_s, cluster_s = partition, Span(), Span()
        k = self.partition.n_shards
        self.shards, self.shard_info = [None] * k, [None] * k
        shards_s = self._train_shards(list(range(k)))
        agg_info, agg_s = self._timed(self.fit_aggregator)
        return FitCost(
            seconds=pretrain_s + cluster_s + shards_s + agg_s,
            partition_s=cluster_s,
            pretrain_s=pretrain_s,
            shards_s=shards_s,
            aggregator_s=agg_s,
            epochs=int(self.shard_info[0].epochs) if k == 1 else None,
            extra={f"aggregator.{key}": v for key, v in agg_info.items()},
        )

    def build_partition(self, data: TrainSet):
        """(partition of `data`'s retained rows as a partition of all its rows, pretraining Span,
        clustering Span); the pretraining Span is what the embeddings cost to train, also when a
        cache served them."""
        part, part_s = self._timed(
            self.partitioner.partition, data.train, data.n_users, data.n_items, derive_seed(self.seed, "partition")
        )
        pretrain_s = Span.of(part.info["pretrain"]) if "pretrain" in part.info else Span()
        cluster_s = Span.of(part.info["cluster"]) if "cluster" in part.info else part_s - pretrain_s
        return part.over_rows(data.row_index, len(data.rows)), pretrain_s, cluster_s

    @property
    def rebuilds_partition(self) -> bool:
        return self.refresh == "rebuild" and bool(self.partition is not None and self.partition.uses_forget)

    def unlearn(self, rows: np.ndarray) -> UnlearnCost:
        rows = np.asarray(rows, dtype=np.int64)
        touched = self.partition.touched(rows)
        self.data = self.data.without(rows)
        partition_s = None
        if self.rebuilds_partition:  # re-pretrain and re-partition on train minus F, at its cost
            old = self.partition
            self.partition, pretrain_s, cluster_s = self.build_partition(self.data)
            partition_s = pretrain_s + cluster_s
            moved = old.row_shard != self.partition.row_shard  # rows that changed shard (F's rows too)
            touched = sorted(
                {
                    int(s)
                    for s in np.unique(np.concatenate([old.row_shard[moved], self.partition.row_shard[moved]]))
                    if s >= 0
                }
            )
        shards_s = self._train_shards(touched)
        agg_s = Span()
        if self.aggregator.trainable:
            _, agg_s = self._timed(self.fit_aggregator)
        elif partition_s is not None:
            self.aggregator.bind(self.shards, self.partition)  # e.g. `own` routes users by the new partition
        return UnlearnCost(
            seconds=shards_s + agg_s + (partition_s or Span()),
            shards_s=shards_s,
            aggregator_s=agg_s,
            partition_s=partition_s,
            shards_retrained=touched,
        )

    def partition_drift(self, data: TrainSet) -> dict:
        """What a kept partition keeps of F: its distance to a partition rebuilt on `data` (train
        minus F) with the same seed. 0 / ARI 1 by construction where the partition read nothing
        trained on F (`random`, `none`) or was rebuilt at unlearning."""
        from ..partition.base import partition_drift

        if not self.partition.uses_forget or self.rebuilds_partition:
            return {"partition_drift": 0.0, "partition_drift.ari": 1.0}
        rebuilt, _, _ = self.build_partition(data)
        return partition_drift(self.partition, rebuilt, data.train)

    def score(self, users):
        return self.aggregator.score(self.shards, users)

    def user_vectors(self, users):
        return self.aggregator.representation(self.shards, users)

    def exact_replica(self, data: TrainSet) -> "ShardedMethod":
        rep = type(self)(self.spec, self.runtime, self.cache_dir)
        # a rebuilt partition is checked too: the replica partitions train minus F from scratch
        rep.fit(data, partition=None if self.rebuilds_partition else self.partition)
        return rep


from ..metrics.keys import KEYS  # noqa: E402

# identity: the axes of a method spec, its seed and its number of shards
_ID = {"group": "identity"}
KEYS.declare("method", "method", doc="the method's registered name", **_ID)
KEYS.declare("method.family", "kind", doc="exact (unlearns to retraining's model or objective) or approximate", **_ID)
KEYS.declare("submodel", "sub-model", doc="the sub-model's registered name", **_ID)
KEYS.declare("seed", "seed", doc="the run's seed, from which every component's seed derives", **_ID)
KEYS.declare("n_shards", "shards", doc="shards of the partition (1: one model)", **_ID)
KEYS.declare("device", "device", doc="the torch device of the run", **_ID)
KEYS.declare(
    "partition_uses_forget",
    "partition reads F",
    group="completeness",
    doc="1 where the partition was built from something trained on F",
)
