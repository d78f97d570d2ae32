"""Full-sort ranking evaluation (RecBole semantics), batched on the device.

Every item is ranked for every evaluated user (users with at least one target item), with the
user's excluded items (their training rows) masked. Ties are broken by the lower item id, so
the result is deterministic and independent of the batch size. `per_user` gives every metric per
evaluated user (in the order of `users`, ascending ids) and `summarise` averages those as `evaluate`
does, so a caller can keep the per-user vectors (`bootstrap_means`, in `bootstrap`: intervals over users).

Two options make the numbers comparable with a peer's code (defaults: the suite's definitions):

- `hr` (`HR_DEFINITIONS`): `any_hit`, HR@K = 1 if any of the user's target items is in the top K;
  `recall`, HR@K = hits in the top K / the user's target count (CURE4Rec's `utils.py` `hit()`,
  lines 11-17), the same number as recall@K.
- `group_average` (`GROUP_AVERAGES`), how the overall `<metric>@K` averages users when a user
  grouping is given to `evaluate` (the shards of a user partition): `weighted`, the mean over users
  (every user counts once, so a group by its size); `unweighted`, the mean of the per-group means
  (every group counts once, CURE4Rec's `lightgcn.py` line 481). The `.active` / `.inactive` and item
  group keys stay means over their users (CURE4Rec weights its groups' active / inactive NDCG by
  their user counts, `lightgcn.py` lines 485-492: the same as the mean over users).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..data.csr import CSR
from ..data.interactions import Interactions
from .bootstrap import bootstrap_means, percentile_interval
from .keys import KEYS
from .topk import topk_stable, writable

__all__ = [
    "GROUP_AVERAGES",
    "HR_DEFINITIONS",
    "METRICS",
    "NDCG_IDEALS",
    "RankingEvaluator",
    "ScoreFn",
    "active_mask",
    "bootstrap_means",
    "cold_item_mask",
    "percentile_interval",
    "topk_stable",
    "writable",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
METRICS = ("recall", "ndcg", "hr", "precision")
NDCG_IDEALS = ("capped", "all")
# HR@K from (hits in the top K, target count) per user
HR_DEFINITIONS = {
    "any_hit": lambda n_hits, n_target: (n_hits > 0).to(torch.float64),
    "recall": lambda n_hits, n_target: n_hits / n_target,
}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _mean_of_group_means(values: np.ndarray, groups: np.ndarray) -> float:
    if not len(values):
        return float("nan")
    _, inverse = np.unique(groups, return_inverse=True)
    return float((np.bincount(inverse, weights=values) / np.bincount(inverse)).mean())


# the overall metric from per-user values and their group labels (None: one group)
GROUP_AVERAGES = {
    "weighted": lambda values, groups: _mean(values),
    "unweighted": lambda values, groups: _mean(values) if groups is None else _mean_of_group_means(values, groups),
}


def _choice(key: str, value: str, valid) -> str:
    if value not in valid:
        from ..errors import ConfigError

        raise ConfigError(f"Unknown eval.{key} '{value}'. Valid: {', '.join(valid)}.")
    return value


def cold_item_mask(degree: np.ndarray, cold_share: float = 0.8) -> np.ndarray:
    """The `cold_share` of items with the lowest degree (ties by lower id): EEMU's cold items."""
    n_cold = int(round(cold_share * len(degree)))
    order = np.lexsort((np.arange(len(degree)), degree))
    mask = np.zeros(len(degree), dtype=bool)
    mask[order[:n_cold]] = True
    return mask


def active_mask(train_counts: np.ndarray, users: np.ndarray, top: float = 0.05) -> np.ndarray:
    """Active users: the top `top` fraction of `users` by training count (ties by lower id)."""
    n_active = max(1, math.ceil(top * len(users))) if len(users) else 0
    order = np.lexsort((users, -train_counts[users]))
    mask = np.zeros(len(users), dtype=bool)
    mask[order[:n_active]] = True
    return mask


class RankingEvaluator:
    """Recall / NDCG / HR / Precision @K of a score function on `target` rows, `exclude` masked."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        exclude: Interactions,
        target: Interactions,
        ks=(10, 20, 50),
        device: torch.device = torch.device("cpu"),
        batch_size: int = 1024,
        ndcg_ideal: str = "capped",
        train_counts: np.ndarray | None = None,
        active_top: float = 0.05,
        cold_share: float = 0.8,
        hr: str = "any_hit",
        group_average: str = "weighted",
    ):
        _choice("ndcg_ideal", ndcg_ideal, NDCG_IDEALS)
        self.hr = HR_DEFINITIONS[_choice("hr", hr, HR_DEFINITIONS)]
        self.group_average = _choice("group_average", group_average, GROUP_AVERAGES)
        self.ks = sorted(int(k) for k in ks)
        self.n_items = n_items
        self.device = device
        self.batch_size = int(batch_size)
        self.ndcg_ideal = ndcg_ideal
        self.exclude = CSR(exclude, n_users, n_items, device)
        self.target = CSR(target, n_users, n_items, device)
        self.users = np.flatnonzero(np.bincount(target.users, minlength=n_users) > 0)
        counts = train_counts if train_counts is not None else np.bincount(exclude.users, minlength=n_users)
        self.active = active_mask(counts, self.users, active_top)
        max_len = max(self.ks[-1], int(self.target.counts.max().item()) if len(target) else 1)
        self.discount = 1.0 / torch.log2(torch.arange(max_len, device=device, dtype=torch.float64) + 2.0)
        self.ideal = torch.cumsum(self.discount, 0)
        self._batches = None
        # item groups (EEMU): cold = the `cold_share` of items with the lowest degree in `exclude`
        # (the retained training rows), ties by lower id; warm = the rest
        cold = cold_item_mask(exclude.item_counts(n_items), cold_share)
        self.item_groups = {"cold": torch.as_tensor(cold, device=device), "warm": torch.as_tensor(~cold, device=device)}
        self.group_targets = {
            g: torch.as_tensor(np.bincount(target.users[m[target.items]], minlength=n_users), device=device)
            for g, m in (("cold", cold), ("warm", ~cold))
        }

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(users, flat indices of their excluded cells) per batch; built once, since early
        stopping evaluates the same users every epoch."""
        if self._batches is None:
            users_t = torch.as_tensor(self.users, device=self.device)
            self._batches = []
            for start in range(0, len(users_t), self.batch_size):
                users = users_t[start : start + self.batch_size]
                row, col = self.exclude.positions(users)
                self._batches.append((users, row * self.n_items + col))
        return self._batches

    def per_user(self, score_fn: ScoreFn, item_groups: bool = False) -> dict[str, np.ndarray]:
        """Metric arrays aligned with `self.users`; with `item_groups` also `<metric>@K.cold` /
        `.warm`: the same full ranking, hits and ideal counted on the group's target items only
        (NaN for a user without target items in the group)."""
        out = {f"{m}@{k}": [] for m in METRICS for k in self.ks}
        groups = list(self.item_groups) if item_groups else []
        out.update({f"{m}@{k}.{g}": [] for g in groups for m in METRICS for k in self.ks})
        kmax = min(self.ks[-1], self.n_items)
        with torch.no_grad():
            for users, excluded in self.batches():
                scores = writable(score_fn(users))
                scores.view(-1).index_fill_(0, excluded, -torch.inf)
                top = topk_stable(scores, kmax)
                hits = self.target.contains(users, top).to(torch.float64)
                n_target = self.target.counts[users].to(torch.float64)
                dcg = torch.cumsum(hits * self.discount[:kmax], 1)
                n_hits = torch.cumsum(hits, 1)
                for k in self.ks:
                    kk = min(k, kmax)
                    cap = torch.clamp(n_target, max=k) if self.ndcg_ideal == "capped" else n_target
                    idcg = self.ideal[(cap - 1).long()]
                    out[f"recall@{k}"].append(n_hits[:, kk - 1] / n_target)
                    out[f"precision@{k}"].append(n_hits[:, kk - 1] / k)
                    out[f"hr@{k}"].append(self.hr(n_hits[:, kk - 1], n_target))
                    out[f"ndcg@{k}"].append(dcg[:, kk - 1] / idcg)
                for g in groups:
                    gh = hits * self.item_groups[g][top].to(torch.float64)
                    gn = self.group_targets[g][users].to(torch.float64)
                    gdcg, ghits = torch.cumsum(gh * self.discount[:kmax], 1), torch.cumsum(gh, 1)
                    none = gn == 0
                    for k in self.ks:
                        kk = min(k, kmax)
                        cap = torch.clamp(gn, max=k) if self.ndcg_ideal == "capped" else gn
                        idcg = self.ideal[(cap.clamp(min=1) - 1).long()]
                        nan = torch.full_like(gn, float("nan"))
                        out[f"recall@{k}.{g}"].append(torch.where(none, nan, ghits[:, kk - 1] / gn.clamp(min=1)))
                        out[f"precision@{k}.{g}"].append(torch.where(none, nan, ghits[:, kk - 1] / k))
                        out[f"hr@{k}.{g}"].append(torch.where(none, nan, self.hr(ghits[:, kk - 1], gn.clamp(min=1))))
                        out[f"ndcg@{k}.{g}"].append(torch.where(none, nan, gdcg[:, kk - 1] / idcg))
        return {name: torch.cat(v).cpu().numpy() if v else np.zeros(0) for name, v in out.items()}

    def evaluate(
        self, score_fn: ScoreFn, groups: bool = True, user_groups: np.ndarray | None = None
    ) -> dict[str, float]:
        """Means over the evaluated users; `groups`: also `.active` / `.inactive` and the item
        groups. `user_groups` (a group label for every user id, e.g. the shard of a user
        partition; None: one group) is what `group_average=unweighted` averages over; it then also
        records `n_eval_groups`."""
        return self.summarise(self.per_user(score_fn, item_groups=groups), groups, user_groups)

    def summarise(
        self, per_user: dict[str, np.ndarray], groups: bool = True, user_groups: np.ndarray | None = None
    ) -> dict[str, float]:
        """`evaluate`'s result from `per_user`'s arrays (aligned with `self.users`), for a caller
        that keeps the per-user values too."""
        labels = None if user_groups is None else np.asarray(user_groups)[self.users]
        average = GROUP_AVERAGES[self.group_average]
        result: dict[str, float] = {}
        for name, values in per_user.items():
            if "." in name:  # an item group: its users only
                result[name] = _mean(values[~np.isnan(values)])
                continue
            result[name] = average(values, labels)
            if groups:
                result[f"{name}.active"] = _mean(values[self.active])
                result[f"{name}.inactive"] = _mean(values[~self.active])
        result["n_eval_users"] = int(len(self.users))
        if self.group_average == "unweighted":
            result["n_eval_groups"] = int(len(np.unique(labels))) if labels is not None else 1
        return result


# the record keys `evaluate` yields, under a stage prefix (`StageMetrics`: before, after, retrain)
_LABELS = {"recall": "Recall", "ndcg": "NDCG", "hr": "HR", "precision": "Precision"}
_VARIANTS = {
    "": "the mean over the evaluated users (eval.group_average=unweighted: the mean of the shard groups' means)",
    ".active": "the mean over the active users (the top eval.active_top of the evaluated users by train count)",
    ".inactive": "the mean over the evaluated users outside the active group",
    ".cold": "hits and ideal counted on cold target items only (the 80% of items with the fewest retained "
    "train rows), mean over the users with such items",
    ".warm": "hits and ideal counted on warm (not cold) target items only, mean over the users with such items",
}
for _metric, _label in _LABELS.items():
    for _suffix, _doc in _VARIANTS.items():
        KEYS.declare(
            f"{{stage}}.{_metric}@{{k}}{_suffix}",
            f"{_label}@{{k}}{_suffix.replace('.', ' ')}",
            better="higher",
            group="utility",
            sub="{stage}",
            doc=f"{_label}@{{k}} of the model at this stage on the test rows of the users still in the "
            f"system, their retained train rows masked: {_doc}.",
        )
KEYS.declare(
    "{stage}.n_eval_groups",
    "eval groups",
    group="utility",
    sub="{stage}",
    doc="user groups the headline metrics average over (eval.group_average=unweighted).",
)
