"""Completeness probes: how close the unlearned model is to never having seen F.

This module holds the per-stage probes of what the model still recalls of F (`forget_hits`, the
collapse of the deleted users' vectors, the popularity ranker as a model that never saw F) and
re-exports the other two families, each in its own module: the gaps to a reference model
(`gaps`) and membership inference (`membership`)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import Interactions
from .gaps import RankGap, score_gaps
from .keys import KEYS
from .membership import MIN_PAIRS, MembershipProbe, bootstrap_auc_ci, rank_auc
from .ranking import RankingEvaluator, ScoreFn

__all__ = [
    "MIN_PAIRS",
    "MembershipProbe",
    "RankGap",
    "bootstrap_auc_ci",
    "forget_hits",
    "mean_pairwise_cosine",
    "popularity_scores",
    "rank_auc",
    "score_gaps",
]


def forget_hits(
    score_fn: ScoreFn, n_users: int, n_items: int, retained: Interactions, forget: Interactions, ks, device, batch: int
) -> dict:
    """Fraction of F's pairs back in the user's top K, ranking with the retained train masked."""
    ev = RankingEvaluator(n_users, n_items, retained, forget, ks=ks, device=device, batch_size=batch)
    per_user = ev.per_user(score_fn)
    n_forget_u = np.bincount(forget.users, minlength=n_users)[ev.users]
    return {f"forget_hit@{k}": float((per_user[f"recall@{k}"] * n_forget_u).sum() / n_forget_u.sum()) for k in ev.ks}


def popularity_scores(retained: Interactions, n_items: int) -> ScoreFn:
    """The popularity ranker: every user scores an item by its count in the retained train rows (a
    model that never saw F, and remembers nothing of any user)."""
    counts = torch.as_tensor(np.bincount(retained.items, minlength=n_items), dtype=torch.float32)

    def score(users: torch.Tensor) -> torch.Tensor:
        return counts.to(users.device).expand(len(users), -1)

    return score


def mean_pairwise_cosine(vectors: torch.Tensor) -> float | None:
    """Mean cosine over the distinct pairs of rows (1.0: every row points one way). Zero rows count
    as orthogonal to everything; fewer than two rows: None (no pair)."""
    n = len(vectors)
    if n < 2:
        return None
    v = vectors.to(torch.float64)
    norms = v.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, v / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(v))
    total = unit.sum(0)
    return float((total @ total - (unit * unit).sum()) / (n * (n - 1)))


# what the per-stage probes' record keys mean
_C = {"group": "completeness"}
KEYS.declare(
    "forget_hit@{k}.{stage}",
    "forget hit@{k}",
    sub="{stage}",
    doc="share of F's pairs back in the user's top {k}; the oracle's value is the target",
    **_C,
)
KEYS.declare(
    "forgotten_collapse.{stage}",
    "collapse",
    sub="{stage}",
    doc="deleted users' mean pairwise cosine of their final user vectors",
    **_C,
)
KEYS.declare(
    "forgotten_collapse.{stage}.untransferred",
    "collapse untransferred",
    sub="{stage}",
    doc="the collapse of the plain mean of the shards' user vectors (before any transfer)",
    **_C,
)
