"""EEMU (Alshabanah, Balasubramanian, Annavaram, "Meta-Learn to Unlearn: Enhanced Exact Machine
Unlearning in Recommendation Systems with Meta-Learning", PoPETs 2025).

Exact by sharding: every user's training interactions are spread over all K shards
(`partitioner=user_split`), each shard's `twotower` is meta-trained with first-order MAML over
its users (support / query split of the user's rows in that shard, one inner step; `meta`),
and at inference every shard model takes one adaptation step per user on the
user's *retained* rows, every item is scored, and the K shard scores are averaged.

Unlearning retrains, from their seeds, exactly the shards holding F: one interaction's deletion
touches one shard, one user's deletion touches every shard the user has rows in (all K for a user
with at least K rows), i.e. a full retraining. The adaptation at score time reads the retained
rows (`self.data`), with item degrees recomputed from them, so a deleted row is never sampled
again; the exact replica scores the same way on the same retained rows.

Scores are computed in fixed blocks of `score_block` user ids and cached until the data changes,
so a user's scores never depend on which other users a caller asked for (exact_gap exactly 0 on
CPU), and the several measurements of one stage pay for the adaptation once. The seconds spent
adapting and scoring are recorded (`eemu.score_s`, `eemu.score_s_per_user_shard`).
"""

from __future__ import annotations

import numpy as np
import torch

from ...metrics.timing import Span, clock
from ...registry import METHODS
from ...runtime import CPU
from ...seeding import derive_seed
from ...training import STOPPING_DEFAULTS
from ..base import ShardedMethod
from . import meta
from .adapt import Adapter


@METHODS.register("eemu")
class EEMU(ShardedMethod):
    allowed = {"partitioner": ["user_split"], "aggregator": ["mean"], "submodel": ["twotower"]}
    defaults = {
        "meta_update": "sequential",  # sequential (the released per-user updates) | batched (vmap)
        "outer": "query",  # query | query_support: the support loss at the batch-start weights too
        "meta_epochs": 100,
        "meta_batch": 32,  # users per meta-batch
        "in_batch_negative": True,  # a second negative per row from the batch's other users (released)
        "lr": 2.0e-4,  # the meta (outer) Adam's learning rate
        "inner_lr": 2.0e-4,  # inner step (batched: a fresh-Adam step; sequential: the shared Adam's lr is lr)
        "adapt": "user_tower",  # user_tower | all | none: which weights the inference step adapts
        "n_adapt": 7,  # adaptation rows per user, drawn with replacement
        "adapt_lr": 2.0e-4,  # the fresh Adam of the adaptation step
        "temperature": 0.01,  # softmax over inverse item degree
        **STOPPING_DEFAULTS,
        "early_stop_metric": "ndcg@10",
        "patience": 5,  # epochs after the last improvement
        "min_epochs": 0,
        "valid_users": 256,  # validation users sampled (fixed, seeded) for model selection; 0: all
        "score_block": 64,  # users adapted at once (a fixed block of user ids)
    }

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        self.cfg = {**self.defaults, **self.cfg}
        meta.check_config(self.cfg)
        self._query_all: np.ndarray | None = None
        self._cache: dict = {}
        self._adapter = None
        self.score_s = Span()  # adapting and scoring, outside every timed region of the lifecycle
        self.score_user_shards = 0

    # -- training ------------------------------------------------------------------------
    def query_rows(self) -> np.ndarray:
        """Query flags over all of `data.rows` (from the partition built at fit time)."""
        if self._query_all is None:
            q = np.zeros(len(self.data.rows), dtype=bool)
            q[self.data.row_index] = self.partition.info["query"]
            self._query_all = q
        return self._query_all

    def train_shard(self, k: int) -> dict:
        sel = self.partition.row_shard == k
        shard = self.data.select(sel)
        query = self.query_rows()[self.data.kept_mask & sel]
        model = self.new_submodel()
        model.build(_features(self.data))
        info = meta.meta_train(
            model,
            shard,
            query,
            self.cfg,
            self.shard_seed(k),
            self.runtime,
            valid_seed=self.seed,
            shard_key=self.adapt_key(k),
            shard=k,
        )
        model.requires_grad_(False)
        self.shards[k] = model
        self.shard_info[k] = info
        return info

    def adapt_key(self, k: int) -> int:
        return derive_seed(self.seed, "adapt", k)

    def fit(self, data, partition=None):
        if partition is None:
            self._query_all = None
        self._invalidate()
        return super().fit(data, partition)

    def unlearn(self, rows):
        self._invalidate()
        cost = super().unlearn(rows)
        self._invalidate()
        return cost

    def exact_replica(self, data):
        rep = type(self)(self.spec, self.runtime, self.cache_dir)
        rep._query_all = self.query_rows()
        rep.fit(data, partition=self.partition)
        return rep

    # -- scoring -----------------------------------------------------------------------------
    def _invalidate(self):
        self._cache, self._adapter = {}, None

    def adapter(self) -> Adapter:
        if self._adapter is None:  # the retained rows, degrees from them
            self._adapter = Adapter(
                self.data.train, self.data.n_users, self.data.n_items, self.cfg, self.runtime.device
            )
        return self._adapter

    def _block(self, b: int) -> torch.Tensor:
        if b not in self._cache:
            self.runtime.sync()
            t0 = clock()
            size = int(self.cfg["score_block"])
            users = torch.arange(b * size, min((b + 1) * size, self.data.n_users), device=self.runtime.device)
            total = None
            for k, model in enumerate(self.shards):
                s = self.adapter().score(model, users, self.adapt_key(k))
                total = s if total is None else total + s
            self._cache[b] = total / len(self.shards)
            self.runtime.sync()
            self.score_s += clock() - t0
            self.score_user_shards += len(users) * len(self.shards)
        return self._cache[b]

    def score(self, users):
        size = int(self.cfg["score_block"])
        blocks = (users // size).cpu().numpy()
        out = torch.empty(len(users), self.data.n_items, device=users.device)
        for b in np.unique(blocks):
            where = np.flatnonzero(blocks == b)
            idx = torch.as_tensor(where, device=users.device)
            out[idx] = self._block(int(b)).to(users.device)[users[idx] - int(b) * size]
        return out

    def user_vectors(self, users):
        return None  # the adapted models have no single user vector per user

    def describe(self) -> dict:
        out = super().describe()
        out.update(
            {
                "eemu.meta_update": self.cfg["meta_update"],
                "eemu.outer": self.cfg["outer"],
                "eemu.adapt": self.cfg["adapt"],
                **self.score_s.keys("eemu.score"),
                "eemu.score_s_per_user_shard": float(self.score_s.wall / max(self.score_user_shards, 1)),
                "eemu.epoch_s": float(np.mean([i.extra.get("epoch_s", 0.0) for i in self.shard_info])),
                "eemu.epoch_cpu_s": float(np.mean([i.extra.get("epoch_cpu_s", 0.0) for i in self.shard_info])),
                # what a deletion costs: one interaction touches one shard, a user every shard they have rows in
                "eemu.unlearn_scope": "interaction: its shard; user: every shard holding the user's rows "
                "(all K for >= K rows)",
            }
        )
        return out


def _features(data):
    f = getattr(data, "features", None)
    return f.get() if hasattr(f, "get") else f


from ...metrics.keys import KEYS  # noqa: E402

KEYS.declare("eemu.meta_update", "meta update", group="other", doc="sequential (released) or batched meta-updates")
KEYS.declare(
    "eemu.outer",
    "outer objective",
    group="other",
    doc="query (first-order MAML) or query_support (the support loss at the batch-start weights too)",
)
KEYS.declare(
    "eemu.adapt", "adapted weights", group="other", doc="which weights the inference step adapts (none: no adaptation)"
)
KEYS.declare(
    "eemu.score_s",
    "scoring",
    unit="s",
    better="lower",
    group="efficiency",
    doc="wall seconds of the adapted scoring (every evaluation)",
)
KEYS.declare(
    "eemu.score_s_per_user_shard",
    "scoring per user shard",
    unit="s",
    better="lower",
    group="efficiency",
    doc="scoring seconds per adapted (user block, shard)",
)
KEYS.declare(
    "eemu.epoch_s",
    "meta-epoch",
    unit="s",
    better="lower",
    group="efficiency",
    doc="mean wall seconds of one meta-epoch of a shard",
)
KEYS.declare("eemu.unlearn_scope", "unlearning scope", group="other", doc="which shards a deletion retrains")
# the EEMU table's ablation rows tell variants apart by these settings
KEYS.declare(
    "cfg.method.meta_update",
    "meta update",
    group="identity",
    doc="EEMU's meta-update: sequential (per user, as released) or batched",
)
KEYS.declare(
    "cfg.method.adapt",
    "adaptation",
    group="identity",
    doc="EEMU's per-user adaptation at scoring: user_tower, all, or none (the ablation)",
)
