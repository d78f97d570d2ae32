"""Completeness probes (SPEC §5): how close the unlearned model is to never having seen F."""
from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import Interactions
from ..seeding import numpy_rng
from .ranking import RankingEvaluator, ScoreFn


def score_gaps(model: ScoreFn, reference: ScoreFn, n_users: int, batch: int, device) -> dict:
    """max |S(model) - S(ref)| and ||S(model) - S(ref)||_F / ||S(ref)||_F over all users x items."""
    max_abs, diff_sq, ref_sq = 0.0, 0.0, 0.0
    with torch.no_grad():
        for start in range(0, n_users, batch):
            users = torch.arange(start, min(start + batch, n_users), device=device)
            a = model(users).to(torch.float64)
            b = reference(users).to(torch.float64)
            d = a - b
            max_abs = max(max_abs, float(d.abs().max()))
            diff_sq += float((d * d).sum())
            ref_sq += float((b * b).sum())
    return {"max_abs": max_abs, "rel_fro": (diff_sq ** 0.5) / (ref_sq ** 0.5) if ref_sq > 0 else float("nan")}


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


class MembershipProbe:
    """Members: F's (user, item) pairs. Non-members: the same users' held-out pairs (validation
    and test rows, never trained on). Attack 1: rank AUC of the raw score. Attack 2: a logistic
    attacker on score features (score, its within-user percentile and z-score), trained on one
    half of the pairs and scored on the other."""

    def __init__(self, forget: Interactions, heldout: Interactions, n_users: int, n_items: int, seed: int,
                 max_pairs: int = 20000, device=torch.device("cpu"), batch: int = 1024):
        rng = numpy_rng(seed, "mia")
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
        if self.n_pairs == 0:
            return {"mia_auc": float("nan"), "mia_lr_auc": float("nan")}
        x = self.features(score_fn)
        auc = rank_auc(x[self.label == 1, 0], x[self.label == 0, 0])
        tr, te = self.train_half, ~self.train_half
        w = _logistic_fit(x[tr], self.label[tr])
        p = _standardise(x[te], x[tr]) @ w[:-1] + w[-1]
        lr_auc = rank_auc(p[self.label[te] == 1], p[self.label[te] == 0])
        return {"mia_auc": auc, "mia_lr_auc": lr_auc}


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


def forget_hits(score_fn: ScoreFn, n_users: int, n_items: int, retained: Interactions, forget: Interactions,
                ks, device, batch: int) -> dict:
    """Fraction of F's pairs back in the user's top K, ranking with the retained train masked."""
    ev = RankingEvaluator(n_users, n_items, retained, forget, ks=ks, device=device, batch_size=batch)
    per_user = ev.per_user(score_fn)
    n_forget_u = np.bincount(forget.users, minlength=n_users)[ev.users]
    return {f"forget_hit@{k}": float((per_user[f"recall@{k}"] * n_forget_u).sum() / n_forget_u.sum()) for k in ev.ks}
