"""How far one model lies from a reference model (the retrain oracle, its reseeded twin, the exact
replica): the distance between their score matrices (`score_gaps`) and between their top-K lists
(`RankGap`). The lifecycle compares the unlearned model with its references through these."""

from __future__ import annotations

import numpy as np
import torch

from ..data.csr import CSR
from ..data.interactions import Interactions
from ..seeding import numpy_rng
from .keys import KEYS
from .ranking import ScoreFn, topk_stable


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


# what the gap keys mean (the lifecycle names them from these functions)
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
