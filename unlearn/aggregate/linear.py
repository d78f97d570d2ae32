"""`linear`: UltraRE's simplified combination estimator (Li et al., NeurIPS 2023).

A logistic regression over the K frozen shard scores of a (user, item) pair: features
x_k = s_k(u, i), standardised per shard (mean / std over the training pairs) when
`standardize` is set; positives are all retained training rows, negatives `num_neg` per positive
drawn uniformly and rejected against the user's retained positives, from the aggregator's own
generator (seeded by the method from (seed, "aggregator")). The weights start at zero and are
fitted full-batch on the device, by L-BFGS with a strong-Wolfe line search (default; the problem
is convex with the L2 penalty `l2`, so the optimum is unique) or by Adam for `epochs` steps.

`per_group: true` learns one weight vector and bias per user group: the group is the shard that
holds the user (`partition.unit_shard`, a user partition is required). A user with no group (no
training rows at fit time) is scored with the mean of the groups' combinations.

The score is the linear logit sum_k a_k s_k(u, i) + c with a_k = w_k / std_k, without the
sigmoid (monotone, so rankings are the same), computed from the shards' batched `score(users)`.
The combiner reads all retained training data, so it is refitted from its seed on unlearning
(`trainable = True`); shards stay frozen.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..registry import AGGREGATORS
from ..runtime import CPU
from ..training import NegativeSampler
from .base import Aggregator, shard_user_vectors


def shard_pair_scores(shards: list, users: torch.Tensor, items: torch.Tensor, batch: int) -> torch.Tensor:
    """(n_pairs x K) matrix of every shard's score of each (user, item) pair, scoring users in
    batches of `batch` with each shard's full `score(users)` and gathering the pairs' items."""
    n, k = len(users), len(shards)
    out = torch.empty(n, k, device=users.device)
    if n == 0:
        return out
    order = torch.argsort(users, stable=True)
    u_sorted, i_sorted = users[order], items[order]
    uniq, counts = torch.unique_consecutive(u_sorted, return_counts=True)
    ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]).tolist()
    with torch.no_grad():
        for b in range(0, len(uniq), batch):
            ub, cb = uniq[b : b + batch], counts[b : b + batch]
            lo, hi = ptr[b], ptr[b + len(ub)]
            local = torch.repeat_interleave(torch.arange(len(ub), device=users.device), cb)
            rows, its = order[lo:hi], i_sorted[lo:hi]
            for s, model in enumerate(shards):
                out[rows, s] = model.score(ub)[local, its].to(out.dtype)
    return out


@AGGREGATORS.register("linear")
class Linear(Aggregator):
    trainable = True
    defaults = {
        "num_neg": 1,
        "per_group": False,
        "standardize": True,
        "optimizer": "lbfgs",  # lbfgs | adam (both full-batch)
        "max_iter": 100,  # L-BFGS iterations
        "epochs": 300,  # Adam steps
        "lr": 1.0,  # L-BFGS step scale; for Adam use e.g. 0.05
        "l2": 1.0e-4,
    }

    def __init__(self, cfg=None, n_users=0, n_items=0, runtime=CPU):
        super().__init__(cfg, n_users, n_items, runtime)
        c = self.cfg
        if c["optimizer"] not in ("lbfgs", "adam"):
            raise ConfigError(f"Unknown aggregator.optimizer '{c['optimizer']}'. Valid: lbfgs, adam.")
        if int(c["num_neg"]) < 1:
            raise ConfigError(f"aggregator.num_neg must be at least 1, got {c['num_neg']}.")
        if float(c["l2"]) < 0:
            raise ConfigError(f"aggregator.l2 must be non-negative, got {c['l2']}.")
        self.weight = self.bias = self.mu = self.sd = None
        self.trained_on = None  # hash of the positive pairs the combiner was fitted on
        self._coef = None

    def check(self, unit, n_shards):
        super().check(unit, n_shards)
        if self.cfg["per_group"] and unit != "user":
            raise ConfigError(
                f"aggregator=linear with per_group=true needs a user partition (ot, kmeans, ubp or random by "
                f"user); the partitioner splits by {unit}. Set aggregator.per_group=false."
            )

    # -- groups -------------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return int(self.partition.n_shards) if self.cfg["per_group"] else 1

    def bind(self, shards, partition):
        super().bind(shards, partition)
        dev = self.runtime.device
        if self.cfg["per_group"]:
            self.check(partition.unit, partition.n_shards)
            group = torch.as_tensor(partition.unit_shard, dtype=torch.long).clone()
            group[group < 0] = self.n_groups  # no group: the mean combination (last row)
        else:
            n = len(partition.unit_shard) if partition.unit_shard is not None else self.n_users
            group = torch.zeros(max(int(n), int(self.n_users)), dtype=torch.long)
        self._group = group.to(dev)
        self._coef = None

    # -- fitting ------------------------------------------------------------------------
    def fit(self, shards, partition, data: TrainSet, seed: int) -> dict:
        self.n_users = self.n_users or data.n_users
        self.bind(shards, partition)
        dev = self.runtime.device
        c = self.cfg
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        users, items, y = self._pairs(data, gen)
        x = shard_pair_scores(shards, users, items, self.runtime.eval_batch)
        mu, sd = _standardisation(x, bool(c["standardize"]), dev)
        z = (x - mu) / sd
        g = self._group[users] if c["per_group"] else torch.zeros(len(users), dtype=torch.long, device=dev)
        k, n_groups, l2 = x.shape[1], self.n_groups, float(c["l2"])
        weight = torch.zeros(n_groups, k, device=dev, requires_grad=True)
        bias = torch.zeros(n_groups, device=dev, requires_grad=True)

        def objective():
            logits = (z * weight[g]).sum(1) + bias[g]
            return F.binary_cross_entropy_with_logits(logits, y) + 0.5 * l2 * weight.pow(2).sum()

        iterations, stop_reason = self._minimise(objective, weight, bias)
        with torch.no_grad():
            loss = float(objective())
        self.weight, self.bias = weight.detach(), bias.detach()
        self.mu, self.sd = mu.detach(), sd.detach()
        self._coef = None
        self.trained_on = positives_hash(data.train.users, data.train.items)
        return {"pairs": int(len(users)), "iterations": iterations, "loss": loss, "stop_reason": stop_reason}

    def _pairs(self, data: TrainSet, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, items, labels): every retained training row (1), then `num_neg` rounds of one
        sampled negative per row (0), drawn from `gen`."""
        dev = self.runtime.device
        pos_u = torch.as_tensor(data.train.users, device=dev)
        pos_i = torch.as_tensor(data.train.items, device=dev)
        m = int(self.cfg["num_neg"])
        sampler = NegativeSampler(pos_u, pos_i, data.n_items)
        neg_u = pos_u.repeat(m)
        neg_i = sampler.sample(neg_u, gen)
        users, items = torch.cat([pos_u, neg_u]), torch.cat([pos_i, neg_i])
        y = torch.cat([torch.ones(len(pos_u), device=dev), torch.zeros(len(neg_u), device=dev)])
        return users, items, y

    def _minimise(self, objective, weight: torch.Tensor, bias: torch.Tensor) -> tuple[int, str]:
        """Fit `weight` and `bias` to `objective` full-batch (L-BFGS or Adam); (iterations, stop reason)."""
        c = self.cfg
        if c["optimizer"] == "lbfgs":
            opt = torch.optim.LBFGS(
                [weight, bias],
                lr=float(c["lr"]),
                max_iter=int(c["max_iter"]),
                tolerance_grad=1e-9,
                tolerance_change=1e-12,
                history_size=20,
                line_search_fn="strong_wolfe",
            )

            def closure():
                opt.zero_grad(set_to_none=True)
                loss = objective()
                loss.backward()
                return loss

            opt.step(closure)
            iterations = int(opt.state[weight].get("n_iter", 0))
            # a convex problem: L-BFGS stops at its tolerances (converged) or at max_iter
            return iterations, "converged" if iterations < int(c["max_iter"]) else "iteration_cap"
        opt = torch.optim.Adam([weight, bias], lr=float(c["lr"]))
        for _ in range(int(c["epochs"])):
            opt.zero_grad(set_to_none=True)
            objective().backward()
            opt.step()
        return int(c["epochs"]), "fixed_budget"

    # -- scoring ------------------------------------------------------------------------
    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, c) per group (plus a last row, the mean over groups, for users without a group):
        score = c[g] + sum_k a[g, k] * s_k."""
        if self._coef is None:
            if self.weight is None:
                raise RuntimeError("aggregator=linear is not fitted")
            a = self.weight / self.sd[None, :]
            c = self.bias - (a * self.mu[None, :]).sum(1)
            a = torch.cat([a, a.mean(0, keepdim=True)])
            c = torch.cat([c, c.mean(0, keepdim=True)])
            self._coef = (a.to(self.runtime.device), c.to(self.runtime.device))
        return self._coef

    def score(self, shards, users):
        a, c = self.coefficients()
        g = self._group.to(users.device)[users]
        ag, out = a[g], None
        for k, model in enumerate(shards):
            s = model.score(users)
            out = s * ag[:, k : k + 1] if out is None else out.add_(s * ag[:, k : k + 1])
        return out.add_(c[g][:, None])

    def representation(self, shards, users):
        """The shards' user vectors side by side, each scaled by its combiner weight (the
        constant c[g] moves no ranking)."""
        vecs = shard_user_vectors(shards, users)
        if vecs is None:
            return None
        a, _ = self.coefficients()
        ag = a[self._group.to(users.device)[users]]
        return {"": torch.cat([v * ag[:, k : k + 1] for k, v in enumerate(vecs)], 1)}

    def state_dict(self):
        return {"weight": self.weight, "bias": self.bias, "mu": self.mu, "sd": self.sd}

    def load_state_dict(self, state):
        dev = self.runtime.device
        self.weight, self.bias = state["weight"].to(dev), state["bias"].to(dev)
        self.mu, self.sd = state["mu"].to(dev), state["sd"].to(dev)
        self._coef = None


def _standardisation(x: torch.Tensor, standardize: bool, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per shard column of `x` (a zero std counts as 1); (0, 1) without `standardize`."""
    if standardize:
        mu, sd = x.mean(0), x.std(0)
        return mu, torch.where(sd > 0, sd, torch.ones_like(sd))
    return torch.zeros(x.shape[1], device=dev), torch.ones(x.shape[1], device=dev)


def positives_hash(users: np.ndarray, items: np.ndarray) -> str:
    """Order-free hash of a set of (user, item) pairs."""
    keys = np.sort(np.asarray(users, dtype=np.int64) * (1 << 32) + np.asarray(items, dtype=np.int64))
    return hashlib.sha256(keys.tobytes()).hexdigest()[:16]
