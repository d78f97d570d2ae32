"""The Unlearn-ALS paper's probes ("Netflix and Forget", Xu et al. 2023), as an `eval.probes` entry.

- `cells_auc`: AUC of the model score between held-out positive cells (the test rows) and
  held-out negative cells (never-observed cells, the same fraction of them, seeded);
- `cells_mse`: squared error of the score against the cell's value (1 / 0) on those cells;
- `removed_mse`: squared error against 1 on the removed (forgotten) cells: the retrained model's
  value is the target, a model that still remembers F scores lower;
- `similar_jaccard`: for every item, its 200 most similar items (cosine of the items' score
  columns, the item geometry the model induces), Jaccard overlap with the retrained model's lists,
  averaged over items; reported for the model before and after unlearning (ours).
- the released code's quantities beside it: `similar_items_released.<stage>`, for every item its
  200 nearest items by cosine of the *item factors* (`implicit`'s similar_items, the item itself
  left out), Jaccard overlap with the *undeleted* model's lists, averaged over items, for the
  retrained and the unlearned model; `similar_users_released.<stage>` the same per user on the
  user factors (the released per-user Jaccard). 1 - value is how far a model moved from M0.

Held-out negatives: `heldout_cells` draws as many never-observed cells as there are held-out
positives (balanced; MSE then weighs positives and negatives alike). `heldout_cells_grid` is the
released protocol: 1% of *all* grid cells are held out, so the negatives are the same fraction of
every never-observed cell (the fraction of observed cells the split held out), mostly negatives.
AUC is comparable between the two; MSE is not (the grid's is dominated by negatives).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import Interactions
from ..registry import PROBES
from ..seeding import numpy_rng
from .completeness import rank_auc


def sample_negative_cells(
    observed: Interactions, n_users: int, n_items: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = numpy_rng(seed, "heldout_negative_cells")
    taken = np.unique(observed.users * n_items + observed.items)
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        cand = rng.integers(0, n_users * n_items, size=2 * (n - len(out)) + 16)
        cand = cand[~np.isin(cand, taken)]
        out = np.unique(np.concatenate([out, cand]))
    out = rng.permutation(out)[:n]
    return out // n_items, out % n_items


def cell_scores(score_fn, users: np.ndarray, items: np.ndarray, device, batch: int = 1024) -> np.ndarray:
    out = np.empty(len(users))
    uniq, inverse = np.unique(users, return_inverse=True)
    with torch.no_grad():
        for s in range(0, len(uniq), batch):
            rows = score_fn(torch.as_tensor(uniq[s : s + batch], device=device))
            sel = np.flatnonzero((inverse >= s) & (inverse < s + batch))
            r = torch.as_tensor(inverse[sel] - s, device=device)
            out[sel] = rows[r, torch.as_tensor(items[sel], device=device)].double().cpu().numpy()
    return out


def similar_items(score_fn, n_users: int, n_items: int, top: int, device, batch: int = 1024) -> torch.Tensor:
    gram = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    with torch.no_grad():
        for s in range(0, n_users, batch):
            cols = score_fn(torch.arange(s, min(s + batch, n_users), device=device)).double()
            gram += cols.T @ cols
        norm = gram.diagonal().clamp_min(1e-24).sqrt()
        cos = gram / norm[:, None] / norm[None, :]
        cos.fill_diagonal_(-torch.inf)
        return torch.topk(cos, min(top, n_items - 1), dim=1).indices.cpu()


def factor_neighbours(factors: torch.Tensor, top: int) -> torch.Tensor:
    """Each row's `top` nearest other rows by cosine of the factors (as `implicit`'s similar_items /
    similar_users, without the row itself)."""
    f = factors.detach().double()
    f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = f @ f.T
    cos.fill_diagonal_(-torch.inf)
    return torch.topk(cos, min(top, len(f) - 1), dim=1).indices.cpu()


def model_factors(score_fn, method):
    """(user factors, item factors) of the model behind `score_fn` (its bound object: the oracle for
    the retrain stage), or None when it is not one factor model."""
    for obj in (getattr(score_fn, "__self__", None), method):
        model = getattr(obj, "model", None)
        if model is None and len(getattr(obj, "shards", None) or []) == 1:
            model = obj.shards[0]
        if model is None:
            continue
        try:
            return model.embeddings()
        except NotImplementedError:
            return None
    return None


def jaccard(a: torch.Tensor, b: torch.Tensor, n_items: int) -> float:
    hit = torch.zeros(len(a), n_items, dtype=torch.bool)
    hit.scatter_(1, a, True)
    inter = hit.gather(1, b).sum(1).double()
    k = a.shape[1]
    return float((inter / (2 * k - inter)).mean())


@PROBES.register("heldout_cells")
class HeldoutCells:
    top = 200
    negatives = "balanced"  # as many held-out negatives as positives

    def __init__(self, data, request, runtime):
        self.device, self.batch = runtime.device, runtime.eval_batch
        self.n_items, self.n_users = data.n_items, data.n_users
        observed = Interactions.concat([data.train, data.valid, data.test])
        pu, pi = data.test.users, data.test.items
        n_neg = len(pu)
        if self.negatives == "grid":  # the held-out fraction of every never-observed cell
            n_obs = len(np.unique(observed.users * data.n_items + observed.items))
            n_neg = int(round(len(pu) / max(len(observed), 1) * (data.n_users * data.n_items - n_obs)))
        nu, ni = sample_negative_cells(observed, data.n_users, data.n_items, n_neg, 0)
        self.users = np.concatenate([pu, nu])
        self.items = np.concatenate([pi, ni])
        self.label = np.concatenate([np.ones(len(pu)), np.zeros(len(nu))])
        forget = data.train.subset(request.rows)
        self.f_users, self.f_items = forget.users, forget.items
        self.similar: dict[str, torch.Tensor] = {}
        self.released: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # stage -> (user, item) factor neighbours

    def measure(self, stage: str, score_fn, method) -> dict:
        s = cell_scores(score_fn, self.users, self.items, self.device, self.batch)
        f = cell_scores(score_fn, self.f_users, self.f_items, self.device, self.batch)
        self.similar[stage] = similar_items(score_fn, self.n_users, self.n_items, self.top, self.device, self.batch)
        factors = model_factors(score_fn, method)
        if factors is not None:
            self.released[stage] = (factor_neighbours(factors[0], self.top), factor_neighbours(factors[1], self.top))
        return {
            "cells_negatives": int((self.label == 0).sum()),
            "cells_auc": rank_auc(s[self.label == 1], s[self.label == 0]),
            "cells_mse": float(np.mean((s - self.label) ** 2)),
            "removed_mse": float(np.mean((f - 1.0) ** 2)) if len(f) else float("nan"),
        }

    def finish(self) -> dict:
        out = {}
        ref = self.similar.get("retrain")
        if ref is not None:
            out.update(
                {
                    f"similar_jaccard.{stage}": jaccard(self.similar[stage], ref, self.n_items)
                    for stage in ("before", "after")
                    if stage in self.similar
                }
            )
        base = self.released.get("before")  # the released code compares against the undeleted model
        if base is not None:
            for stage in ("retrain", "after"):
                if stage in self.released:
                    users, items = self.released[stage]
                    out[f"similar_items_released.{stage}"] = jaccard(items, base[1], self.n_items)
                    out[f"similar_users_released.{stage}"] = jaccard(users, base[0], self.n_users)
        return out


@PROBES.register("heldout_cells_grid")
class HeldoutCellsGrid(HeldoutCells):
    """The released protocol's held-out cells: 1% of all grid cells (see the module docstring)."""

    negatives = "grid"


from .keys import KEYS  # noqa: E402

KEYS.declare(
    "{stage}.cells_auc",
    "cells AUC",
    sub="{stage}",
    better="higher",
    group="utility",
    doc="AUC of the score, held-out positive cells against held-out never-observed cells",
)
KEYS.declare(
    "{stage}.cells_mse",
    "cells MSE",
    sub="{stage}",
    better="lower",
    group="utility",
    doc="squared error of the score against the held-out cells' values (1 / 0)",
)
KEYS.declare(
    "{stage}.cells_negatives",
    "held-out negatives",
    sub="{stage}",
    group="utility",
    doc="never-observed cells the cells AUC / MSE rest on",
)
KEYS.declare(
    "{stage}.removed_mse",
    "removed MSE",
    sub="{stage}",
    group="completeness",
    doc="squared error against 1 on the removed cells; the oracle's value is the target",
)
KEYS.declare(
    "similar_jaccard.{stage}",
    "similar-item overlap",
    sub="{stage}",
    better="higher",
    group="completeness",
    doc="Jaccard of every item's 200 most similar items (score columns) with the oracle's, mean over items",
)
KEYS.declare(
    "similar_items_released.{stage}",
    "similar items vs M0",
    sub="{stage}",
    group="completeness",
    doc="Jaccard of item-factor neighbours with the undeleted model's (released); the oracle's is the target",
)
KEYS.declare(
    "similar_users_released.{stage}",
    "similar users vs M0",
    sub="{stage}",
    group="completeness",
    doc="Jaccard of user-factor neighbours with the undeleted model's (released); the oracle's is the target",
)
