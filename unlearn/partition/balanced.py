"""RecEraser's balanced partitions (Chen et al., WWW 2022, "Recommendation Unlearning", Alg. 1-2):
`ubp` (users), `ibp` (items) and `inbp` (interactions).

1. Embeddings of users and items from a model pretrained on all of train (WMF by default,
   config key `embedding`; cached by content hash, see `pretrain.py`). The model saw the forget
   set, so the partition depends on F (`uses_forget=True`).
2. K anchors drawn at random among the units with the partition's own seed (for `inbp` an anchor
   is an interaction, i.e. a (user, item) pair of anchors).
3. Every (unit, anchor) pair is scored by squared Euclidean distance; for interactions by the
   product of the user's distance to the anchor's user and the item's distance to the anchor's
   item (the released InBP).
4. Pairs are walked nearest first (ties: lower unit id, then lower anchor id); a unit goes to
   the first anchor of its pairs that still has room. Capacity: `ceil(1.2 * n / K)` units per
   shard (the released code's `len(C_k) < 1.2 n / K`).
5. Anchors move to the mean of their members; steps 3-5 repeat `iterations` times (default 50),
   stopping early once the assignment no longer changes.

The greedy walk is exact but vectorised (`greedy_capacity_assign`, in `greedy.py`): instead of a
Python loop over the n*K sorted pairs it finds each anchor's "full time" (the pair at which it takes
its last member) by a monotone fixed-point iteration over whole-array operations; see that function.

`centroid_update`:
  - `mean` (default): per-dimension mean of the members' embeddings (k-means' update, what the
    paper describes).
  - `released`: the released code's `np.mean(temp_u)` without an axis, which averages *all*
    member values into one scalar, so the anchor becomes a constant vector (c, c, ..., c). After
    the first iteration every anchor lies on the diagonal of the embedding space and distances
    only see each embedding's offset from that line: the geometry the pretrained embeddings
    carry is lost and the partition degenerates towards a split by embedding mean/norm. Kept
    only to reproduce the published partitions.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from fractions import Fraction

import numpy as np
import torch

from ..data.units import unit_ids
from ..errors import ConfigError
from ..metrics.timing import clock
from ..registry import PARTITIONERS
from ..seeding import numpy_rng
from .base import Partition, Partitioner, rows_from_units
from .greedy import greedy_capacity_assign, greedy_capacity_assign_reference  # noqa: F401  (re-exported)
from .pretrain import CLUSTERING_EMBEDDING, pretrained_embeddings

CENTROID_UPDATES = ("mean", "released")


def squared_distances(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(n x K) exact squared Euclidean distances sum((x - a)^2), one anchor at a time (K is small)."""
    out = torch.empty(x.shape[0], anchors.shape[0], dtype=x.dtype)
    for j in range(anchors.shape[0]):
        torch.sum((x - anchors[j]).pow_(2), dim=1, out=out[:, j])
    return out


class BalancedPartition(Partitioner):
    """Shared machinery of `ubp`, `ibp`, `inbp`; each sets `unit` and its `space` (what is clustered,
    how it is scored)."""

    defaults = {
        "n_shards": 10,
        "iterations": 50,
        "capacity_factor": 1.2,
        "centroid_update": "mean",
        "embedding": CLUSTERING_EMBEDDING,  # the one converged source of every clustering partitioner
    }

    def __init__(self, cfg=None, **kw):
        super().__init__(cfg, **kw)
        if self.cfg["centroid_update"] not in CENTROID_UPDATES:
            raise ConfigError(
                f"Unknown partitioner.centroid_update '{self.cfg['centroid_update']}'. "
                f"Valid: {', '.join(CENTROID_UPDATES)}."
            )
        if int(self.cfg["iterations"]) < 1:
            raise ConfigError(f"partitioner.iterations must be at least 1, got {self.cfg['iterations']}.")
        if float(self.cfg["capacity_factor"]) < 1.0:
            raise ConfigError(
                "partitioner.capacity_factor must be at least 1 (shards must hold every unit), "
                f"got {self.cfg['capacity_factor']}."
            )
        emb = self.cfg["embedding"]
        if not isinstance(emb, dict) and not hasattr(emb, "items"):
            raise ConfigError(
                "partitioner.embedding must be a sub-model config, e.g. {name: wmf, epochs: 20, dim: 64}."
            )

    # -- pieces ----------------------------------------------------------------------
    def _embeddings(self, train, n_users, n_items, seed):
        u, i, seconds = pretrained_embeddings(
            train, n_users, n_items, dict(self.cfg["embedding"]), seed, self.runtime, self.cache_dir
        )
        return u.double().cpu(), i.double().cpu(), seconds  # a Span

    def _update(self, x: torch.Tensor, ids: torch.Tensor, assign: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """New anchors from the members' embeddings x[ids] grouped by `assign` (K x d)."""
        k, n = old.shape[0], x.shape[0]
        counts = torch.bincount(assign * n + ids, minlength=k * n).view(k, n).to(x.dtype)  # member multiplicities
        size = counts.sum(1)
        sums = counts @ x  # (K x d)
        if self.cfg["centroid_update"] == "mean":
            new = sums / size.clamp(min=1)[:, None]
        else:  # released: np.mean over all members and dimensions -> one scalar per anchor
            new = (sums.sum(1) / (size * x.shape[1]).clamp(min=1))[:, None].expand_as(old).clone()
        empty = size == 0
        new[empty] = old[empty]  # an anchor that won nobody stays where it was
        return new

    # -- the partition ---------------------------------------------------------------
    @abstractmethod
    def space(self, train, n_users, n_items, users_emb, items_emb):
        """The units to cluster and how they are scored (set by ubp / ibp / inbp)."""

    def assign(self, train, n_users, n_items, seed):
        start = clock()
        users_emb, items_emb, pretrain = self._embeddings(train, n_users, n_items, seed)
        cluster_start = clock()
        k = self.n_shards
        space = self.space(train, n_users, n_items, users_emb, items_emb)
        n = space.n
        capacity = math.ceil(Fraction(str(self.cfg["capacity_factor"])) * n / k)  # exact: no float round-up
        rng = numpy_rng(seed, "partition", self.registered_name)
        anchors = space.anchors(torch.as_tensor(np.sort(rng.choice(n, size=k, replace=False))))
        prev, rounds, converged, iters = None, 0, False, 0
        for _ in range(int(self.cfg["iterations"])):
            iters += 1
            assign, r = greedy_capacity_assign(space.scores(anchors), capacity)
            rounds += r
            if prev is not None and torch.equal(assign, prev):
                converged = True
                break
            prev = assign
            anchors = space.update(self._update, assign, anchors)
        assign_np = assign.numpy().astype(np.int64)
        sizes = np.bincount(assign_np, minlength=k)
        cluster = clock() - cluster_start
        info = {
            "pretrain": pretrain,
            "cluster": cluster,
            "pretrain_s": float(pretrain.wall),
            "cluster_s": float(cluster.wall),
            "iterations": iters,
            "converged": converged,
            "greedy_rounds": rounds,
            "capacity": int(capacity),
            "empty_shards": int((sizes == 0).sum()),
            "seconds": (clock() - start).wall,
        }
        row_shard, unit_shard = space.shards(train, assign_np)
        return Partition(self.unit, k, row_shard, unit_shard, uses_forget=True, info=info)


class EntitySpace:
    """Units with one embedding each (users for ubp, items for ibp): squared distance to an anchor."""

    def __init__(self, unit: str, train, size: int, emb: torch.Tensor):
        self.unit, self.size, self.emb = unit, size, emb
        self.present = np.flatnonzero(np.bincount(unit_ids(unit, train), minlength=size))
        self.ids = torch.as_tensor(self.present)
        self.unit_emb = emb[self.ids]
        self.n = len(self.present)

    def anchors(self, pick: torch.Tensor) -> torch.Tensor:
        return self.unit_emb[pick]

    def scores(self, anchors: torch.Tensor) -> torch.Tensor:
        return squared_distances(self.unit_emb, anchors)

    def update(self, move, assign: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return move(self.emb, self.ids, assign, anchors)

    def shards(self, train, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unit_shard = np.full(self.size, -1, dtype=np.int64)
        unit_shard[self.present] = assign
        return rows_from_units(self.unit, train, unit_shard), unit_shard


class InteractionSpace:
    """Interactions (inbp): an anchor is a (user, item) pair, and an interaction's score is the
    product of its user's distance to the anchor's user and its item's to the anchor's item."""

    def __init__(self, train, users_emb: torch.Tensor, items_emb: torch.Tensor):
        self.users_emb, self.items_emb = users_emb, items_emb
        self.uid, self.iid = torch.as_tensor(train.users), torch.as_tensor(train.items)
        self.n = len(train)
        self._buf = None

    def anchors(self, pick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users_emb[self.uid[pick]], self.items_emb[self.iid[pick]]

    def scores(self, anchors) -> torch.Tensor:
        anchors_u, anchors_i = anchors
        if self._buf is None:
            self._buf = torch.empty(2, self.n, anchors_u.shape[0], dtype=torch.float64)
        du = squared_distances(self.users_emb, anchors_u)  # per user, then gathered per row
        di = squared_distances(self.items_emb, anchors_i)
        return torch.index_select(du, 0, self.uid, out=self._buf[0]).mul_(
            torch.index_select(di, 0, self.iid, out=self._buf[1])
        )

    def update(self, move, assign: torch.Tensor, anchors):
        anchors_u, anchors_i = anchors
        return move(self.users_emb, self.uid, assign, anchors_u), move(self.items_emb, self.iid, assign, anchors_i)

    def shards(self, train, assign: np.ndarray) -> tuple[np.ndarray, None]:
        return assign, None


@PARTITIONERS.register("ubp")
class UserBalancedPartition(BalancedPartition):
    """RecEraser UBP: users clustered by their pretrained embeddings, balanced."""

    unit = "user"

    def space(self, train, n_users, n_items, users_emb, items_emb):
        return EntitySpace("user", train, n_users, users_emb)


@PARTITIONERS.register("ibp")
class ItemBalancedPartition(BalancedPartition):
    """RecEraser IBP: items clustered by their pretrained embeddings, balanced."""

    unit = "item"

    def space(self, train, n_users, n_items, users_emb, items_emb):
        return EntitySpace("item", train, n_items, items_emb)


@PARTITIONERS.register("inbp")
class InteractionBalancedPartition(BalancedPartition):
    """RecEraser InBP: interactions; anchors are (user, item) pairs, distance = product."""

    unit = "interaction"

    def space(self, train, n_users, n_items, users_emb, items_emb):
        return InteractionSpace(train, users_emb, items_emb)
