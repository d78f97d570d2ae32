"""The shards' bookkeeping of a sharded method: training one shard or the aggregator into place,
what `describe` reports of the shards' training (and its record keys), and the `state_dict` /
`load_state_dict` pair. A mixin of `ShardedMethod` (`base.py`), kept apart from the fit / unlearn
flow that calls it."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.interactions import TrainSet
from ..fit_report import FitReport
from ..metrics.keys import KEYS
from ..metrics.timing import Span, timed
from ..seeding import derive_seed


class ShardState:
    """The shards' bookkeeping of a `ShardedMethod`: building and training one shard or the
    aggregator into `shards` / `shard_info` / `aggregator` / `aggregator_info`, what `describe`
    reports of them, and caching them."""

    # -- building blocks --------------------------------------------------------------
    def new_submodel(self):
        return self.submodel_cls(self.data.n_users, self.data.n_items, self.spec["submodel"], runtime=self.runtime)

    def new_aggregator(self):
        return self._agg_cls(self.spec["aggregator"], self.data.n_users, self.data.n_items, self.runtime)

    def shard_seed(self, k: int) -> int:
        return derive_seed(self.seed, "shard", k)

    def shard_data(self, k: int) -> TrainSet:
        return self.data.select(self.partition.row_shard == k)

    def train_shard(self, k: int) -> FitReport:
        model = self.new_submodel()
        info = model.fit(self.shard_data(k), self.shard_seed(k))
        model.requires_grad_(False)
        self.shards[k] = model
        self.shard_info[k] = info
        return info

    def fit_aggregator(self) -> dict:
        self.aggregator = self.new_aggregator()
        self.aggregator_info = (
            self.aggregator.fit(self.shards, self.partition, self.data, derive_seed(self.seed, "aggregator")) or {}
        )
        return self.aggregator_info

    def _timed(self, fn, *args) -> tuple[object, Span]:
        return timed(fn, *args, sync=self.runtime.sync)

    def _train_shards(self, ks: list[int]) -> Span:
        total = Span()
        for k in tqdm(
            ks, desc="shards", leave=False, disable=None if (self.runtime.progress and len(ks) > 1) else True
        ):
            _, spent = self._timed(self.train_shard, k)
            total += spent
        return total

    # -- reporting -------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "n_shards": self.partition.n_shards,
            "shard_sizes": self.partition.sizes(self.data.rows),
            "shard_epochs": [int(i.epochs) for i in self.shard_info],
            # shards whose training the epoch cap ended while validation still improved
            "shards_at_epoch_cap": sum(1 for i in self.shard_info if i.stop_reason == "epoch_cap"),
            # where each shard's fit stopped and why (training.EarlyStopping.stop_reason)
            "shard_best_epochs": [i.kept_epoch for i in self.shard_info],
            "shard_stop_reasons": [str(i.stop_reason) for i in self.shard_info],
            **(
                {"aggregator_stop_reason": str(self.aggregator_info["stop_reason"])}
                if "stop_reason" in self.aggregator_info
                else {}
            ),
            "partition_uses_forget": bool(self.partition.uses_forget),
        }

    # -- caching ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        p = self.partition
        state = {
            "kept": torch.as_tensor(self.data.kept_mask),
            "row_shard": torch.as_tensor(p.row_shard),
            "n_shards": torch.tensor(p.n_shards),
        }
        if p.unit_shard is not None:
            state["unit_shard"] = torch.as_tensor(p.unit_shard)
        for k, m in enumerate(self.shards):
            state.update({f"shard.{k}.{n}": t.detach().cpu() for n, t in m.state_dict().items()})
        state.update({f"aggregator.{n}": t.detach().cpu() for n, t in self.aggregator.state_dict().items()})
        return state

    def load_state_dict(self, state: dict, data: TrainSet) -> None:
        from ..partition.base import Partition

        kept = state["kept"].numpy().astype(bool)
        if len(kept) != len(data.rows) or not np.array_equal(kept, data.kept_mask):
            raise ValueError(f"cached method={self.registered_name} state was fitted on other training rows")
        self.data = data
        unit_shard = state["unit_shard"].numpy() if "unit_shard" in state else None
        self.partition = Partition(
            self.partitioner.unit, int(state["n_shards"]), state["row_shard"].numpy(), unit_shard
        )
        k = self.partition.n_shards
        self.shards, self.shard_info = [], [FitReport.cached() for _ in range(k)]
        for s in range(k):
            m = self.new_submodel()
            prefix = f"shard.{s}."
            m.load_state_dict({n[len(prefix) :]: t for n, t in state.items() if n.startswith(prefix)})
            m.to(self.runtime.device).requires_grad_(False).eval()
            self.shards.append(m)
        self.aggregator = self.new_aggregator()
        self.aggregator.bind(self.shards, self.partition)
        self.aggregator.load_state_dict(
            {n[len("aggregator.") :]: t for n, t in state.items() if n.startswith("aggregator.")}
        )


# what `describe` reports of a sharded method's training
KEYS.declare("shard_sizes", "shard sizes", group="other", doc="retained training rows per shard")
KEYS.declare("shard_epochs", "shard epochs", group="other", doc="epochs each shard's last fit ran")
KEYS.declare("shard_best_epochs", "shard best epochs", group="other", doc="the epoch each shard's fit kept")
KEYS.declare("shard_stop_reasons", "shard stop reasons", group="other", doc="why each shard's fit ended")
KEYS.declare(
    "shards_at_epoch_cap",
    "shards at epoch cap",
    group="other",
    doc="shards whose fit the epoch cap ended while validation still improved (a diagnostic)",
)
