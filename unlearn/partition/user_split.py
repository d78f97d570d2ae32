"""`user_split` (EEMU): every user's training interactions spread over all K shards.

Each user's rows are shuffled (the partition's own seed) and cut into K nearly equal chunks, chunk
k going to shard k (sizes differ by at most one; a user with fewer than K rows lands in the first
shards of a per-user random rotation, so small users do not all pile into shard 0). Within each
chunk the last `query_len` rows are the user's query set for meta-training, the others the
support set; a chunk of one row is query only. The roles are `Partition.info["query"]`, aligned
with the rows given to `assign`. Unit: interaction (one interaction's deletion touches one shard,
a user's deletion touches every shard the user has rows in).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..registry import PARTITIONERS
from ..seeding import numpy_rng
from .base import Partition, Partitioner


@PARTITIONERS.register("user_split")
class UserSplit(Partitioner):
    unit = "interaction"
    defaults = {"n_shards": 8, "query_len": 1}

    def check_config(self):
        super().check_config()
        if int(self.cfg["query_len"]) < 0:
            raise ConfigError(f"partitioner.query_len must be at least 0, got {self.cfg['query_len']}.")

    def assign(self, train, n_users, n_items, seed):
        rng = numpy_rng(seed, "partition", "user_split")
        k, q = self.n_shards, int(self.cfg["query_len"])
        users = train.users
        n = len(users)
        order = np.lexsort((rng.random(n), users))  # rows by user, shuffled within the user
        counts = np.bincount(users, minlength=n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n) - starts[users[order]]  # rank of the row within its user
        c = counts[users]
        # chunk of rank r among c rows cut into k nearly equal chunks: floor(r * k / c)
        chunk = (pos * k) // c
        small = c < k  # fewer rows than shards: one row per shard
        rot = rng.integers(0, k, size=n_users)
        chunk = np.where(small, (pos + rot[users]) % k, chunk)
        # position within the chunk and the chunk's size
        lo = -(-(chunk * c) // k)  # first rank of the chunk: ceil(chunk * c / k)
        hi = -(-((chunk + 1) * c) // k)
        size = np.where(small, 1, hi - lo)
        within = np.where(small, 0, pos - lo)
        query = within >= size - q
        return Partition("interaction", k, chunk.astype(np.int64), info={"query": query})
