"""A researcher's own method, defined outside the package: registered by name, nothing edited.

Scores every item by its popularity in the retained training data; unlearning recounts."""

import time

import numpy as np
import torch

from unlearn.methods.base import Method
from unlearn.methods.costs import FitCost, UnlearnCost
from unlearn.registry import METHODS


@METHODS.register("popularity")
class Popularity(Method):
    allowed = {"aggregator": ["none"], "partitioner": ["none"]}

    def fit(self, data):
        t0 = time.perf_counter()
        self.data = data
        self._count()
        return FitCost(seconds=time.perf_counter() - t0)

    def _count(self):
        items = self.data.train.items
        self.pop = torch.as_tensor(np.bincount(items, minlength=self.data.n_items), dtype=torch.float32)

    def unlearn(self, rows):
        t0 = time.perf_counter()
        self.data = self.data.without(rows)
        self._count()
        return UnlearnCost(seconds=time.perf_counter() - t0)

    def score(self, users):
        return self.pop.to(users.device).expand(len(users), -1)
