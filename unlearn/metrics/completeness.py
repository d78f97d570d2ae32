"""Completeness probes: how close the unlearned model is to never having seen F."""

from __future__ import annotations

import numpy as np
import torch

from ..data.csr import CSR
from ..data.interactions import Interactions
from ..seeding import numpy_rng
from .ranking import RankingEvaluator, ScoreFn, topk_stable

MIN_PAIRS = 100  # an MIA cell resting on fewer pairs a side is flagged in the report


def score_gaps(model: ScoreFn, reference: ScoreFn, n_users: int, batch: int, device) -> dict:
    """Over all users x items: `max_abs` = max |S(model) - S(ref)|; `rel_fro` = ||S(model) - S(ref)||_F /
    ||S(ref)||_F on raw scores; `rel_fro_std` = the same on per-user standardised scores (each
    user's row minus its mean, over its standard deviation), which no per-user affine change of the
    score scale moves: sqrt(2 (1 - mean per-user Pearson correlation)) up to the users whose
    scores are constant."""
    max_abs, diff_sq, ref_sq, zdiff_sq, zref_sq = 0.0, 0.0, 0.0, 0.0, 0.0
    with torch.no_grad():
        for start in range(0, n_users, batch):
            users = torch.arange(start, min(start + batch, n_users), device=device)
            a = model(users).to(torch.float64)
            b = reference(users).to(torch.float64)
            d = a - b
            max_abs = max(max_abs, float(d.abs().max()))
            diff_sq += float((d * d).sum())
            ref_sq += float((b * b).sum())
            za, zb = _standardise_rows(a), _standardise_rows(b)
            zdiff_sq += float(((za - zb) ** 2).sum())
            zref_sq += float((zb * zb).sum())
    rel = (diff_sq**0.5) / (ref_sq**0.5) if ref_sq > 0 else float("nan")
    rel_std = (zdiff_sq**0.5) / (zref_sq**0.5) if zref_sq > 0 else float("nan")
    return {"max_abs": max_abs, "rel_fro": rel, "rel_fro_std": rel_std}


def _standardise_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row minus its mean over its (population) standard deviation; constant rows -> 0."""
    centred = x - x.mean(1, keepdim=True)
    std = centred.pow(2).mean(1, keepdim=True).sqrt()
    return torch.where(std > 0, centred / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(centred))


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


class RankGap:
    """1 - mean Jaccard of two models' top-K lists, over retained users and over deleted users (the
    users who lost rows; `.deleted` keys). Both rankings mask the user's retained train rows: the
    candidate set of every stage. At most `max_users` users a group, drawn with the run's seed."""

    def __init__(
        self,
        retained: Interactions,
        forget: Interactions,
        n_users: int,
        n_items: int,
        ks,
        seed: int,
        max_users: int = 5000,
        device=torch.device("cpu"),
        batch: int = 1024,
    ):
        rng = numpy_rng(seed, "rank_gap")
        deleted = np.unique(forget.users)
        kept = np.setdiff1d(np.unique(retained.users), deleted)
        pick = lambda u: np.sort(rng.choice(u, max_users, replace=False)) if len(u) > max_users else u
        self.groups = {"": pick(kept), ".deleted": pick(deleted)}
        self.ks = sorted(int(k) for k in ks)
        self.exclude = CSR(retained, n_users, n_items, device)
        self.n_items, self.device, self.batch = n_items, device, batch

    def tops(self, score_fn: ScoreFn) -> dict[str, torch.Tensor]:
        """Each group's top-max(K) lists (users x K), best first."""
        k = min(self.ks[-1], self.n_items)
        out = {}
        with torch.no_grad():
            for name, users in self.groups.items():
                parts = []
                for start in range(0, len(users), self.batch):
                    u = torch.as_tensor(users[start : start + self.batch], device=self.device)
                    scores = score_fn(u).to(torch.float32).clone()
                    row, col = self.exclude.positions(u)
                    scores[row, col] = -torch.inf
                    parts.append(topk_stable(scores, k))
                out[name] = torch.cat(parts) if parts else torch.zeros(0, k, dtype=torch.long, device=self.device)
        return out

    def gap(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
        """{"@K" and "@K.deleted": 1 - mean Jaccard} from two `tops` results."""
        out = {}
        for name in self.groups:
            for k in self.ks:
                ta, tb = a[name][:, :k], torch.sort(b[name][:, :k], dim=1).values
                if len(ta) == 0:
                    out[f"@{k}{name}"] = float("nan")
                    continue
                kk = ta.shape[1]
                pos = torch.searchsorted(tb, ta.contiguous()).clamp(max=kk - 1)
                inter = (tb.gather(1, pos) == ta).sum(1).to(torch.float64)
                out[f"@{k}{name}"] = float((1.0 - inter / (2 * kk - inter)).mean())
        return out


# what the completeness probes' record keys mean (the lifecycle names them from these functions)
from .keys import KEYS  # noqa: E402

_C = {"group": "completeness"}
KEYS.declare(
    "exact_gap",
    "exact gap",
    better="lower",
    doc="max |score difference| to the exact replica (the same partition and seeds fitted on train minus "
    "F); empty where every shard was retrained",
    **_C,
)
KEYS.declare(
    "untouched_shards", "untouched shards", doc="shards left as they were by unlearning: what the exact gap tests", **_C
)
KEYS.declare(
    "retrain_gap",
    "score gap",
    sub="std.",
    better="lower",
    doc="relative distance to the retrain oracle's per-user standardised scores",
    **_C,
)
KEYS.declare(
    "retrain_gap.raw",
    "score gap",
    sub="raw",
    better="lower",
    doc="relative Frobenius distance to the retrain oracle's raw scores",
    **_C,
)
KEYS.declare(
    "seed_floor.retrain_gap",
    "score gap",
    sub="seed floor",
    reference=True,
    doc="the score gap between the oracle and the oracle with another seed",
    **_C,
)
KEYS.declare(
    "retrain_rank_gap@{k}",
    "rank gap@{k}",
    sub="retained",
    better="lower",
    doc="1 - mean top-{k} Jaccard with the retrain oracle over retained users",
    **_C,
)
KEYS.declare(
    "retrain_rank_gap@{k}.deleted",
    "rank gap@{k}",
    sub="deleted",
    better="lower",
    doc="1 - mean top-{k} Jaccard with the retrain oracle over the users who lost rows",
    **_C,
)
KEYS.declare(
    "seed_floor@{k}",
    "seed floor@{k}",
    sub="retained",
    reference=True,
    doc="the rank gap@{k} between the oracle and the oracle with another seed",
    **_C,
)
KEYS.declare(
    "seed_floor@{k}.deleted",
    "seed floor@{k}",
    sub="deleted",
    reference=True,
    doc="the seed floor@{k} over the users who lost rows",
    **_C,
)
KEYS.declare(
    "rank_gap_over_floor@{k}",
    "gap/floor@{k}",
    sub="retained",
    better="lower",
    doc="rank gap / seed floor (about 1: as close to the oracle as a reseeded retrain)",
    **_C,
)
KEYS.declare(
    "rank_gap_over_floor@{k}.deleted",
    "gap/floor@{k}",
    sub="deleted",
    better="lower",
    doc="rank gap / seed floor over the users who lost rows",
    **_C,
)
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
