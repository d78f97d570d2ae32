"""Probes of the realistic deletion requests, attached by the request itself
(`DeletionRequest.probes`) and keyed like forget-hit: `<name>@K.<stage>`. Every ranking covers all
items but the user's retained train rows (train minus F), so forgotten rows may come back.

- `sensitive_exposure` (deletion.selection=sensitive): over the requesting users,
  `sensitive_exposure@K` is the share with at least one item of the genre G in their top K and
  `sensitive_count@K` the mean number of such items. The oracle's value (`.retrain`: a model that
  never saw the rows) is the target; a popularity ranker (`.popularity`) shows what plain
  popularity exposes. `sensitive_excess@K` = after - oracle.
- `spam_promotion` (deletion.selection=spam): over the real evaluated users (those with a test
  row: no fake user has one), `target_hit@K` is the share with a target item in the top K and
  `target_rank` the mean rank of the best-ranked target (1: first; a user whose every target is a
  retained train row is left out). `attack_lift@K` = before - oracle is what the fake users bought;
  under `LIFT_FLOOR` it is flagged (`attack_lift_flag@K`): the attack did nothing and the row says
  nothing about unlearning. `residual_promotion@K` = (after - oracle) / (before - oracle): 0 when
  the promotion is fully unlearned, 1 when nothing is; null where the lift is flagged (a ratio of
  two noise-sized differences).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.csr import CSR
from ..errors import ConfigError
from ..registry import PROBES
from .completeness import popularity_scores
from .keys import KEYS
from .ranking import topk_stable, writable

LIFT_FLOOR = 0.01  # an attack lifting target_hit by less than this did nothing worth unlearning


def masked_scores(score_fn, users: np.ndarray, exclude: CSR, device, batch: int):
    """Score rows of `users`, batch by batch, with each user's `exclude` items at -inf."""
    users_t = torch.as_tensor(users, dtype=torch.int64, device=device)
    with torch.no_grad():
        for start in range(0, len(users_t), batch):
            block = users_t[start : start + batch]
            scores = writable(score_fn(block))
            row, col = exclude.positions(block)
            scores[row, col] = -torch.inf
            yield scores


class _Probe:
    """The parts both probes share: the retained rows masked, cut-offs, the values of every stage."""

    context_key = ""
    kind = ""

    def __init__(self, data, request, runtime, ks=(10, 20, 50)):
        self.ctx = request.context.get(self.context_key)
        if self.ctx is None:
            raise ConfigError(
                f"probe {self.registered_name} reads a deletion.selection={self.kind} request, "
                f"not selection={request.selection}; it is attached to such requests by itself."
            )
        self.device, self.batch = runtime.device, runtime.eval_batch
        self.n_users, self.n_items = data.n_users, data.n_items
        self.ks = sorted({int(k) for k in ks})
        self.retained = data.train.without(request.rows)
        self.exclude = CSR(self.retained, data.n_users, data.n_items, runtime.device)
        self.values: dict[str, dict] = {}

    def measure(self, stage: str, score_fn, method=None) -> dict:
        self.values[stage] = self.compute(score_fn)
        return dict(self.values[stage])

    def popularity(self) -> dict:
        pop = self.compute(popularity_scores(self.retained, self.n_items))
        return {f"{name}.popularity": v for name, v in pop.items()}

    def compute(self, score_fn) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def top_counts(self, score_fn, users: np.ndarray, items: np.ndarray) -> dict[int, np.ndarray]:
        """{K: per user, how many of `items` (a mask over items) are in the top K}."""
        mask = torch.as_tensor(items, dtype=torch.bool, device=self.device)
        kmax = min(self.ks[-1], self.n_items)
        parts: dict[int, list] = {k: [] for k in self.ks}
        for scores in masked_scores(score_fn, users, self.exclude, self.device, self.batch):
            cum = torch.cumsum(mask[topk_stable(scores, kmax)].to(torch.int64), 1)
            for k in self.ks:
                parts[k].append(cum[:, min(k, kmax) - 1])
        return {k: torch.cat(v).cpu().numpy() if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()}


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


@PROBES.register("sensitive_exposure")
class SensitiveExposure(_Probe):
    context_key, kind = "sensitive", "sensitive"

    def __init__(self, data, request, runtime, ks=(10, 20, 50)):
        super().__init__(data, request, runtime, ks)
        self.users = np.asarray(self.ctx["users"], dtype=np.int64)
        self.items = np.asarray(self.ctx["genre_items"], dtype=bool)

    def compute(self, score_fn) -> dict:
        counts = self.top_counts(score_fn, self.users, self.items)
        out = {}
        for k in self.ks:
            out[f"sensitive_exposure@{k}"] = _mean((counts[k] > 0).astype(np.float64))
            out[f"sensitive_count@{k}"] = _mean(counts[k].astype(np.float64))
        return out

    def finish(self) -> dict:
        out = self.popularity()
        after, oracle = self.values.get("after"), self.values.get("retrain")
        if after is not None and oracle is not None:
            for k in self.ks:
                a, o = after[f"sensitive_exposure@{k}"], oracle[f"sensitive_exposure@{k}"]
                out[f"sensitive_excess@{k}"] = None if a is None or o is None else a - o
        out.update(
            {
                "sensitive.genre": self.ctx["genre"],
                "sensitive.min_rating": self.ctx["min_rating"],
                "sensitive.users": int(len(self.users)),
                "sensitive.candidates": int(self.ctx["candidates"]),
            }
        )
        return out


@PROBES.register("spam_promotion")
class SpamPromotion(_Probe):
    context_key, kind = "spam", "spam"

    def __init__(self, data, request, runtime, ks=(10, 20, 50)):
        super().__init__(data, request, runtime, ks)
        spam = self.ctx
        tested = np.unique(data.test.users)
        self.users = tested[tested < spam.n_real_users]  # real users only (fake users have no test rows)
        self.targets = np.zeros(data.n_items, dtype=bool)
        self.targets[spam.targets] = True

    def compute(self, score_fn) -> dict:
        counts = self.top_counts(score_fn, self.users, self.targets)
        out = {f"target_hit@{k}": _mean((counts[k] > 0).astype(np.float64)) for k in self.ks}
        targets = torch.as_tensor(np.flatnonzero(self.targets), device=self.device)
        ranks = []
        for scores in masked_scores(score_fn, self.users, self.exclude, self.device, self.batch):
            best = scores[:, targets].max(1).values
            rank = (scores > best[:, None]).sum(1).to(torch.float64) + 1.0
            ranks.append(rank[best > -torch.inf])
        ranks = torch.cat(ranks).cpu().numpy() if ranks else np.zeros(0)
        out["target_rank"] = _mean(ranks)
        return out

    def finish(self) -> dict:
        out = self.popularity()
        before, after, oracle = (self.values.get(s) for s in ("before", "after", "retrain"))
        if before is not None and oracle is not None:
            for k in self.ks:
                lift = before[f"target_hit@{k}"] - oracle[f"target_hit@{k}"]
                out[f"attack_lift@{k}"] = lift
                out[f"attack_lift_flag@{k}"] = bool(lift < LIFT_FLOOR)
                if after is not None:
                    out[f"residual_promotion@{k}"] = (
                        (after[f"target_hit@{k}"] - oracle[f"target_hit@{k}"]) / lift if lift >= LIFT_FLOOR else None
                    )  # else noise over noise
        spam = self.ctx
        out.update(
            {
                "spam.fake_users": int(len(spam.fake_users)),
                "spam.targets": int(len(spam.targets)),
                "spam.targets_per_profile": int(spam.targets_per_profile),
                "spam.profile_len": int(spam.profile_len),
                "spam.real_users": int(len(self.users)),
            }
        )
        return out


_C = {"group": "completeness"}
KEYS.declare(
    "sensitive_exposure@{k}.{stage}",
    "sensitive exposure@{k}",
    sub="{stage}",
    doc=(
        "share of the requesting users with an item of the sensitive genre in their top {k} (retained train rows "
        "masked); the oracle's value is the target"
    ),
    **_C,
)
KEYS.declare(
    "sensitive_count@{k}.{stage}",
    "sensitive items@{k}",
    sub="{stage}",
    doc=(
        "mean number of items of the sensitive genre in the requesting users' top {k}; the oracle's value is the target"
    ),
    **_C,
)
KEYS.declare(
    "sensitive_excess@{k}",
    "sensitive excess@{k}",
    doc=("sensitive exposure@{k} after unlearning minus the oracle's (0: exposed as a model that never saw the rows)"),
    **_C,
)
KEYS.declare(
    "target_hit@{k}.{stage}",
    "target hit@{k}",
    sub="{stage}",
    doc=(
        "share of the real evaluated users with a spam target item in their top {k}; the oracle's value is the target"
    ),
    **_C,
)
KEYS.declare(
    "target_rank.{stage}",
    "target rank",
    sub="{stage}",
    doc=(
        "mean rank of the best-ranked spam target over the real evaluated users (1: first); the oracle's value is "
        "the target"
    ),
    **_C,
)
KEYS.declare(
    "attack_lift@{k}",
    "attack lift@{k}",
    reference=True,
    doc=("target hit@{k} of the model trained with the fake users minus the oracle's: what the attack bought"),
    **_C,
)
KEYS.declare(
    "attack_lift_flag@{k}",
    "no lift@{k}",
    reference=True,
    doc=("attack lift@{k} under 0.01: the attack did nothing, so the residual promotion says nothing"),
    **_C,
)
KEYS.declare(
    "residual_promotion@{k}",
    "residual promotion@{k}",
    doc=(
        "(target hit@{k} after - oracle's) / attack lift@{k}: 0 fully unlearned (the target value, so no row is "
        "marked best), 1 nothing unlearned, below 0 the targets pushed below where the oracle ranks them; null where "
        "the lift is under 0.01"
    ),
    **_C,
)
_ID = {"group": "identity"}
KEYS.declare("sensitive.genre", "sensitive genre", doc="the genre (or genres, |-joined) the requests forget", **_ID)
KEYS.declare(
    "sensitive.min_rating",
    "min rating",
    doc=("the rating a row of the genre needs to be forgotten; null on implicit data (every row of the genre)"),
    **_ID,
)
KEYS.declare("sensitive.users", "requesting users", doc="users whose sensitive rows are forgotten", **_ID)
KEYS.declare("sensitive.candidates", "qualifying users", doc="users with a qualifying row, drawn from", **_ID)
KEYS.declare("spam.fake_users", "fake users", doc="fake users injected into train (and forgotten)", **_ID)
KEYS.declare("spam.targets", "targets", doc="target items the fake users promote", **_ID)
KEYS.declare("spam.targets_per_profile", "targets per profile", doc="target items in each fake profile", **_ID)
KEYS.declare("spam.profile_len", "fillers", doc="popular filler items in each fake profile", **_ID)
KEYS.declare("spam.real_users", "real users", doc="real evaluated users the target hit is measured over", **_ID)
