"""Membership inference on the forget set: can an attacker tell F's pairs (members) from the same
users' held-out pairs (non-members) by the model's scores? A rank AUC of the raw score and a
logistic attacker on score features, each with a bootstrap interval."""

from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import Interactions
from ..seeding import numpy_rng
from .keys import KEYS
from .ranking import ScoreFn

MIN_PAIRS = 100  # an MIA cell resting on fewer pairs a side is flagged in the report


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties: P(score_pos > score_neg)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def bootstrap_auc_ci(
    pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator, n_boot: int = 200, level: float = 0.95
) -> list[float]:
    """Percentile bootstrap interval of `rank_auc(pos, neg)`: members and non-members resampled
    with replacement, each side on its own (its size kept). Every replicate is an exact weighted
    Mann-Whitney AUC (resampling = integer weights), from one sort of the non-members."""
    n_p, n_n = len(pos), len(neg)
    if n_p == 0 or n_n == 0 or n_boot < 1:
        return [float("nan"), float("nan")]
    order = np.argsort(neg, kind="mergesort")
    sorted_neg = neg[order]
    below = np.searchsorted(sorted_neg, pos, side="left")  # non-members strictly below each member
    upto = np.searchsorted(sorted_neg, pos, side="right")  # ... and those tied with it
    rows = np.arange(n_boot)[:, None]
    w_pos = np.bincount((rows * n_p + rng.integers(0, n_p, (n_boot, n_p))).ravel(), minlength=n_boot * n_p)
    w_neg = np.bincount((rows * n_n + rng.integers(0, n_n, (n_boot, n_n))).ravel(), minlength=n_boot * n_n)
    w_neg = w_neg.reshape(n_boot, n_n)[:, order]
    cum = np.concatenate([np.zeros((n_boot, 1)), np.cumsum(w_neg, 1)], 1)
    wins = cum[:, below] + 0.5 * (cum[:, upto] - cum[:, below])  # weighted non-members beaten (ties half)
    auc = (w_pos.reshape(n_boot, n_p) * wins).sum(1) / (n_p * n_n)
    tail = (1.0 - level) / 2.0
    return [float(np.quantile(auc, tail)), float(np.quantile(auc, 1.0 - tail))]


class MembershipProbe:
    """Members: F's (user, item) pairs. Non-members: the same users' held-out pairs (validation
    and test rows, never trained on). Attack 1: rank AUC of the raw score. Attack 2: a logistic
    attacker on score features (score, its within-user percentile and z-score), trained on one
    half of the pairs and scored on the other. Each AUC comes with a bootstrap 95% interval
    (`n_boot` replicates resampling the pairs it was computed on, the same replicates at every
    stage) and `n_pairs`, the pairs a side."""

    def __init__(
        self,
        forget: Interactions,
        heldout: Interactions,
        n_users: int,
        n_items: int,
        seed: int,
        max_pairs: int = 20000,
        device=torch.device("cpu"),
        batch: int = 1024,
        n_boot: int = 200,
    ):
        rng = numpy_rng(seed, "mia")
        self.seed, self.n_boot = seed, int(n_boot)
        held = heldout.of_users(forget.user_mask(n_users))
        n = int(min(len(forget), len(held), max_pairs))
        self.n_pairs = n
        self.device, self.batch, self.n_items = device, batch, n_items
        if n == 0:
            return
        m = rng.choice(len(forget), n, replace=False)
        h = rng.choice(len(held), n, replace=False)
        self.users = np.concatenate([forget.users[m], held.users[h]])
        self.items = np.concatenate([forget.items[m], held.items[h]])
        self.label = np.concatenate([np.ones(n), np.zeros(n)])
        self.train_half = rng.random(2 * n) < 0.5

    def features(self, score_fn: ScoreFn) -> np.ndarray:
        feats = np.zeros((len(self.users), 3))
        uniq, inverse = np.unique(self.users, return_inverse=True)
        with torch.no_grad():
            for start in range(0, len(uniq), self.batch):
                block = uniq[start : start + self.batch]
                rows = torch.as_tensor(block, device=self.device)
                scores = score_fn(rows).to(torch.float64)
                mean, std = scores.mean(1), scores.std(1).clamp_min(1e-12)
                sel = np.flatnonzero((inverse >= start) & (inverse < start + len(block)))
                r = torch.as_tensor(inverse[sel] - start, device=self.device)
                it = torch.as_tensor(self.items[sel], device=self.device)
                s = scores[r, it]
                pct = (scores[r] < s[:, None]).to(torch.float64).mean(1)
                feats[sel, 0] = s.cpu().numpy()
                feats[sel, 1] = pct.cpu().numpy()
                feats[sel, 2] = ((s - mean[r]) / std[r]).cpu().numpy()
        return feats

    def measure(self, score_fn: ScoreFn) -> dict:
        nan = float("nan")
        if self.n_pairs == 0:
            return {"mia_auc": nan, "mia_auc.ci95": [nan, nan], "mia_lr_auc": nan, "mia_lr_auc.ci95": [nan, nan]}
        x = self.features(score_fn)
        pos, neg = x[self.label == 1, 0], x[self.label == 0, 0]
        tr, te = self.train_half, ~self.train_half
        w = _logistic_fit(x[tr], self.label[tr])
        p = _standardise(x[te], x[tr]) @ w[:-1] + w[-1]
        lr_pos, lr_neg = p[self.label[te] == 1], p[self.label[te] == 0]
        return {
            "mia_auc": rank_auc(pos, neg),
            "mia_auc.ci95": bootstrap_auc_ci(pos, neg, numpy_rng(self.seed, "mia", "boot"), self.n_boot),
            "mia_lr_auc": rank_auc(lr_pos, lr_neg),
            "mia_lr_auc.ci95": bootstrap_auc_ci(lr_pos, lr_neg, numpy_rng(self.seed, "mia", "boot", "lr"), self.n_boot),
        }


def _standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (x - ref.mean(0)) / np.maximum(ref.std(0), 1e-12)


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (a handful of features)."""
    z = np.hstack([_standardise(x, x), np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) / len(y) + l2 * w
        hess = (z * (p * (1 - p))[:, None]).T @ z / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


# what the membership probe's record keys mean
_C = {"group": "completeness"}
KEYS.declare(
    "mia_auc.{stage}",
    "MIA AUC",
    sub="{stage}",
    doc="rank AUC of the raw score, F's pairs against the same users' held-out pairs; the oracle's "
    "value is the target, so no direction is better",
    **_C,
)
KEYS.declare(
    "mia_lr_auc.{stage}",
    "MIA-LR AUC",
    sub="{stage}",
    doc="AUC of a logistic attacker on score features; the oracle's value is the target",
    **_C,
)
KEYS.declare(
    "mia_auc.{stage}.ci95",
    "MIA AUC 95% interval",
    sub="{stage}",
    doc="percentile bootstrap interval [low, high] of the MIA AUC over the pairs",
    **_C,
)
KEYS.declare(
    "mia_lr_auc.{stage}.ci95",
    "MIA-LR AUC 95% interval",
    sub="{stage}",
    doc="percentile bootstrap interval [low, high] of the MIA-LR AUC",
    **_C,
)
KEYS.declare("mia_pairs", "MIA pairs", doc="pairs a side the membership probe rests on", **_C)
