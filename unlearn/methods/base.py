"""Methods: `fit(data)`, `unlearn(rows)`, `score(users)`, registered by name.

`ShardedMethod` is the whole SISA family: partition -> one sub-model per shard, each from its
own seed -> aggregator. Unlearning retrains the shards the forget rows touch (from the same
seeds) and refits a trainable aggregator; every other shard is left bit-identical.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.interactions import Interactions, TrainSet
from ..errors import ConfigError
from ..registry import AGGREGATORS, PARTITIONERS, SUBMODELS
from ..runtime import CPU, Runtime
from ..seeding import derive_seed


@dataclass
class FitData:
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions


class Method:
    """Base class. `spec` holds the composed axes: method, submodel, partitioner, aggregator
    (each a dict with `name`) and `seed`."""

    registered_name = "method"
    exact = False        # claims exactness by construction (compared with its exact replica)
    allowed: dict = {}   # axis -> allowed names, checked before any training

    def __init__(self, spec: dict, runtime: Runtime = CPU, cache_dir: str | None = None):
        self.spec = spec
        self.cfg = {k: v for k, v in spec.get("method", {}).items() if k != "name"}
        self.seed = int(spec.get("seed", 0))
        self.runtime = runtime
        self.cache_dir = cache_dir
        self.check()

    def check(self) -> None:
        for axis, names in self.allowed.items():
            got = self.spec.get(axis, {}).get("name")
            if got not in names:
                raise ConfigError(
                    f"method={self.registered_name} cannot use {axis}={got}. Valid {axis} choices "
                    f"for it: {', '.join(names)}."
                )

    def fit(self, data: FitData, partition=None) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def unlearn(self, rows: np.ndarray) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, users: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def replica(self):
        """An unfitted copy with the same spec (for the exact replica)."""
        return type(self)(self.spec, self.runtime, self.cache_dir)

    def record_extra(self) -> dict:
        """Method-specific keys for the result record."""
        return {}

    def state_dict(self) -> dict:
        raise NotImplementedError(f"method {self.registered_name} cannot be cached")

    def load_state_dict(self, state: dict, data: FitData) -> None:
        raise NotImplementedError(f"method {self.registered_name} cannot be cached")


class ShardedMethod(Method):
    exact = True

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        self.submodel_cls = SUBMODELS.get(spec["submodel"]["name"])
        self.partitioner = PARTITIONERS.get(spec["partitioner"]["name"])(
            spec["partitioner"], runtime=runtime, cache_dir=cache_dir
        )
        agg_cls = AGGREGATORS.get(spec["aggregator"]["name"])
        self._agg_cls = agg_cls
        agg_cls(spec["aggregator"]).check(self.partitioner.unit, self.partitioner.n_shards)
        self.shards: list = []
        self.aggregator = None
        self.partition = None

    # -- building blocks --------------------------------------------------------------
    def new_submodel(self):
        return self.submodel_cls(self.data.n_users, self.data.n_items, self.spec["submodel"], runtime=self.runtime)

    def shard_seed(self, k: int) -> int:
        return derive_seed(self.seed, "shard", k)

    def shard_trainset(self, k: int) -> TrainSet:
        rows = np.flatnonzero(self.retained & (self.partition.row_shard == k))
        return TrainSet.for_rows(self.data.n_users, self.data.n_items, self.data.train.subset(rows), self.data.valid)

    def retained_trainset(self) -> TrainSet:
        rows = np.flatnonzero(self.retained)
        return TrainSet.for_rows(self.data.n_users, self.data.n_items, self.data.train.subset(rows), self.data.valid)

    def train_shard(self, k: int) -> dict:
        model = self.new_submodel()
        info = model.fit(self.shard_trainset(k), self.shard_seed(k))
        model.requires_grad_(False)
        self.shards[k] = model
        self.shard_info[k] = info
        return info

    def fit_aggregator(self) -> dict:
        self.aggregator = self._agg_cls(self.spec["aggregator"], self.data.n_users, self.data.n_items, self.runtime)
        return self.aggregator.fit(self.shards, self.partition, self.retained_trainset(),
                                   derive_seed(self.seed, "aggregator")) or {}

    def _timed(self, fn, *args):
        self.runtime.sync()
        t0 = time.perf_counter()
        out = fn(*args)
        self.runtime.sync()
        return out, time.perf_counter() - t0

    def _train_shards(self, ks: list[int]) -> float:
        total = 0.0
        for k in tqdm(ks, desc="shards", leave=False, disable=None if (self.runtime.progress and len(ks) > 1) else True):
            _, sec = self._timed(self.train_shard, k)
            total += sec
        return total

    # -- the method API -------------------------------------------------------------
    def fit(self, data: FitData, partition=None) -> dict:
        self.data = data
        self.retained = np.ones(len(data.train), dtype=bool)
        if partition is None:
            self.partition, part_s = self._timed(
                self.partitioner.partition, data.train, data.n_users, data.n_items, derive_seed(self.seed, "partition")
            )
        else:
            self.partition, part_s = partition, 0.0
        k = self.partition.n_shards
        self.shards, self.shard_info = [None] * k, [None] * k
        shards_s = self._train_shards(list(range(k)))
        agg_info, agg_s = self._timed(self.fit_aggregator)
        info = self.partition.info if partition is None else {}
        # embeddings pretrained for the partition cost what their training took, also when a cache
        # served them, so fit_s does not depend on which run came first
        pretrain_s = float(info.get("pretrain_s", 0.0))
        cluster_s = float(info.get("cluster_s", part_s - pretrain_s))
        return {
            "fit_s": pretrain_s + cluster_s + shards_s + agg_s,
            "fit.partition_s": cluster_s,
            "fit.pretrain_s": pretrain_s,
            "fit.shards_s": shards_s,
            "fit.aggregator_s": agg_s,
            **{f"fit.aggregator.{k}": v for k, v in agg_info.items() if isinstance(v, (int, float))},
        }

    def unlearn(self, rows: np.ndarray) -> dict:
        rows = np.asarray(rows, dtype=np.int64)
        touched = self.partition.touched(rows)
        self.retained[rows] = False
        shards_s = self._train_shards(touched)
        agg_s = 0.0
        if self.aggregator.trainable:
            _, agg_s = self._timed(self.fit_aggregator)
        return {
            "unlearn_s": shards_s + agg_s,
            "unlearn.shards_s": shards_s,
            "unlearn.aggregator_s": agg_s,
            "shards_retrained": touched,
        }

    def score(self, users):
        return self.aggregator.score(self.shards, users)

    def record_extra(self) -> dict:
        return {
            "n_shards": self.partition.n_shards,
            "shard_sizes": self.partition.sizes(self.data.train),
            "shard_epochs": [int(i["epochs"]) for i in self.shard_info],
            # shards whose training the epoch cap ended while validation still improved
            "shards_at_epoch_cap": sum(1 for i in self.shard_info if "stopped_early" in i and not i["stopped_early"]),
            "partition_uses_forget": bool(self.partition.uses_forget),
        }

    def exact_replica(self, data_minus_forget: FitData) -> "ShardedMethod":
        rep = self.replica()
        rep.fit(data_minus_forget, partition=self.partition.restrict(np.flatnonzero(self.retained)))
        return rep

    def state_dict(self) -> dict:
        state = {"row_shard": torch.as_tensor(self.partition.row_shard[self.retained])}
        for k, m in enumerate(self.shards):
            state.update({f"shard.{k}.{n}": t.detach().cpu() for n, t in m.state_dict().items()})
        state.update({f"aggregator.{n}": t.detach().cpu() for n, t in self.aggregator.state_dict().items()})
        return state

    def load_state_dict(self, state: dict, data: FitData) -> None:
        from ..partition.base import Partition

        self.data = data
        self.retained = np.ones(len(data.train), dtype=bool)
        row_shard = state["row_shard"].numpy()
        unit_shard = None
        if self.partitioner.unit == "user":
            unit_shard = np.full(data.n_users, -1, dtype=np.int64)
            unit_shard[data.train.users] = row_shard
        self.partition = Partition(self.partitioner.unit, int(row_shard.max()) + 1, row_shard, unit_shard)
        k = self.partition.n_shards
        self.shards, self.shard_info = [], [{"epochs": 0}] * k
        for s in range(k):
            m = self.new_submodel()
            prefix = f"shard.{s}."
            m.load_state_dict({n[len(prefix):]: t for n, t in state.items() if n.startswith(prefix)})
            m.to(self.runtime.device).requires_grad_(False).eval()
            self.shards.append(m)
        self.aggregator = self._agg_cls(self.spec["aggregator"], data.n_users, data.n_items, self.runtime)
        self.aggregator.bind(self.shards, self.partition)
        self.aggregator.load_state_dict({n[len("aggregator."):]: t for n, t in state.items() if n.startswith("aggregator.")})
