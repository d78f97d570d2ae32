"""`own_cross`: the combination of UltraRE's released code (Li et al., NeurIPS 2023).

A user u in group g(u) (the shard that holds the user) is represented by its own group's user
vector p_u^{g(u)}; the score of item i averages that vector's dot products with every group's item
vectors q_i^k,

    s(u, i) = (1/K) sum_k p_u^{g(u)} . q_i^k = p_u^{g(u)} . mean_k q_i^k,

so a group's model scores its own users against the items as all K groups learnt them. Nothing is
learnt (no refit on unlearning); it needs a user partition and sub-models with embeddings (MF:
bpr, bce, mse, wmf). A user without a group (no training rows at fit time) is represented by the
mean of its K shard vectors. `aggregator=linear` (a logistic combiner over the K shard scores)
is this suite's reading of the paper's combination estimator; both run in `ultrare_main`.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..registry import AGGREGATORS
from .base import Aggregator, shard_user_vectors


@AGGREGATORS.register("own_cross")
class OwnCross(Aggregator):
    requires_unit = ("user",)

    def bind(self, shards, partition):
        super().bind(shards, partition)
        self._owner = torch.as_tensor(partition.unit_shard)
        try:
            items = [m.embeddings()[1] for m in shards]
        except NotImplementedError as err:
            raise ConfigError(
                f"aggregator=own_cross needs sub-models with embeddings (bpr, bce, mse, wmf): {err}"
            ) from err
        self._items = torch.stack(items).mean(0)  # (n_items x d): mean_k q^k

    def _user_vectors(self, shards, users):
        vecs = torch.stack(shard_user_vectors(shards, users))  # (K x B x d)
        owner = self._owner.to(users.device)[users]
        own = vecs[owner.clamp(min=0), torch.arange(len(users), device=users.device)]
        return torch.where((owner >= 0)[:, None], own, vecs.mean(0))

    def score(self, shards, users):
        return self._user_vectors(shards, users) @ self._items.to(users.device).T

    def representation(self, shards, users):
        return {"": self._user_vectors(shards, users)}
