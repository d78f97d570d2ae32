"""The Unlearn-ALS paper's probes ("Netflix and Forget", Xu et al. 2023), as an `eval.probes` entry.

- `cells_auc`: AUC of the model score between held-out positive cells (the test rows) and
  held-out negative cells (never-observed cells, the same fraction of them, seeded);
- `cells_mse`: squared error of the score against the cell's value (1 / 0) on those cells;
- `removed_mse`: squared error against 1 on the removed (forgotten) cells: the retrained model's
  value is the target, a model that still remembers F scores lower;
- `similar_jaccard`: for every item, its 200 most similar items (cosine of the items' score
  columns, the item geometry the model induces), Jaccard overlap with the retrained model's lists,
  averaged over items; reported for the model before and after unlearning.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.interactions import Interactions
from ..registry import PROBES
from ..seeding import numpy_rng
from .completeness import rank_auc


def sample_negative_cells(observed: Interactions, n_users: int, n_items: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


def jaccard(a: torch.Tensor, b: torch.Tensor, n_items: int) -> float:
    hit = torch.zeros(len(a), n_items, dtype=torch.bool)
    hit.scatter_(1, a, True)
    inter = hit.gather(1, b).sum(1).double()
    k = a.shape[1]
    return float((inter / (2 * k - inter)).mean())


@PROBES.register("heldout_cells")
class HeldoutCells:
    top = 200

    def __init__(self, data, request, runtime):
        self.device, self.batch = runtime.device, runtime.eval_batch
        self.n_items, self.n_users = data.n_items, data.n_users
        observed = Interactions.concat([data.train, data.valid, data.test])
        pu, pi = data.test.users, data.test.items
        nu, ni = sample_negative_cells(observed, data.n_users, data.n_items, len(pu), 0)
        self.users = np.concatenate([pu, nu])
        self.items = np.concatenate([pi, ni])
        self.label = np.concatenate([np.ones(len(pu)), np.zeros(len(nu))])
        forget = data.train.subset(request.rows)
        self.f_users, self.f_items = forget.users, forget.items
        self.similar: dict[str, torch.Tensor] = {}

    def measure(self, stage: str, score_fn, method) -> dict:
        s = cell_scores(score_fn, self.users, self.items, self.device, self.batch)
        f = cell_scores(score_fn, self.f_users, self.f_items, self.device, self.batch)
        self.similar[stage] = similar_items(score_fn, self.n_users, self.n_items, self.top, self.device, self.batch)
        return {
            "cells_auc": rank_auc(s[self.label == 1], s[self.label == 0]),
            "cells_mse": float(np.mean((s - self.label) ** 2)),
            "removed_mse": float(np.mean((f - 1.0) ** 2)) if len(f) else float("nan"),
        }

    def finish(self) -> dict:
        ref = self.similar.get("retrain")
        if ref is None:
            return {}
        return {f"similar_jaccard.{stage}": jaccard(self.similar[stage], ref, self.n_items)
                for stage in ("before", "after") if stage in self.similar}
