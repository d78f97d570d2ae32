"""A method that answers every deletion request and forgets nothing: the model fitted on all of
train stays as it was (only its record of the retained rows changes). What an unlearning probe
reads as "nothing unlearned" (e.g. residual_promotion = 1)."""

import time

from unlearn.methods.costs import UnlearnCost
from unlearn.methods.sisa import Retrain
from unlearn.registry import METHODS


@METHODS.register("ignore_requests")
class IgnoreRequests(Retrain):
    def is_retrain_oracle(self) -> bool:
        return False

    def unlearn(self, rows):
        t0 = time.perf_counter()
        self.data = self.data.without(rows)
        return UnlearnCost(seconds=time.perf_counter() - t0, shards_retrained=[])
