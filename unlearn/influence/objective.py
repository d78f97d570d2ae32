"""The sub-model's own training objective on a fixed set of rows, as a function of its tables.

J is written in sum form: the sub-model's `loss(batch)` on one batch of all the rows, times the
batch's row count where that loss is a mean (bpr, bce, mse, lightgcn), or the sum of its user
batches where it is a sum (wmf); the regulariser is the training one, row by row. In sum form
J_D - J_R is the forget rows' own loss, so an influence step needs no 1/n factor. ALS has no
batches: its objective over all cells is written here (the Gram trick), differentiably.

Negatives are drawn once per request (the caller's seeded generator) and held fixed, so J is a
deterministic, smooth function of the parameters; dropout is off (the model is evaluated in eval
mode).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import ConfigError
from ..models.als import ImplicitALS
from ..models.bce import BCEMF
from ..models.bpr import BPRMF
from ..models.lightgcn import LightGCN, normalized_adjacency
from ..models.mse import MSEMF
from ..models.wmf import WMF
from ..training import NegativeSampler, UserRows

SUBMODELS = ("bpr", "bce", "mse", "wmf", "lightgcn", "als")


def kind_of(model) -> str:
    """The objective family of a sub-model or sub-model class (its loss and batch layout)."""
    cls_of = model if isinstance(model, type) else type(model)
    for cls, kind in (
        (LightGCN, "lightgcn"),
        (WMF, "wmf"),
        (MSEMF, "mse"),
        (BCEMF, "bce"),
        (BPRMF, "bpr"),
        (ImplicitALS, "als"),
    ):
        if issubclass(cls_of, cls):
            return kind
    raise ConfigError(
        f"influence unlearning cannot use submodel={getattr(model, 'registered_name', model)}. "
        f"Valid: {', '.join(SUBMODELS)}."
    )


def table_names(model) -> tuple[str, str]:
    return ("user_factors", "item_factors") if isinstance(model, ImplicitALS) else ("user_emb", "item_emb")


def tables(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The user and item parameter tables (the tensors an influence step moves)."""
    u, i = table_names(model)
    return getattr(model, u), getattr(model, i)


def decomposable(kind: str) -> bool:
    """Whether a user row's derivatives read only that user's rows (items fixed): then the users
    block's Hessian is block-diagonal and J may be evaluated on the rows touching the block."""
    return kind != "lightgcn"


def n_negatives(model, kind: str, ratings: np.ndarray) -> int:
    if kind in ("bpr", "lightgcn"):
        return 1
    if kind == "bce":
        return int(model.cfg["num_neg"])
    if kind == "mse":
        m = model.cfg["num_neg"]
        return (1 if _implicit(ratings) else 0) if m == "auto" else int(m)
    return 0


def _implicit(ratings: np.ndarray) -> bool:
    return len(ratings) == 0 or float(ratings.max()) <= float(ratings.min())


@dataclass
class Rows:
    """A fixed set of training rows with their negatives (m x n) and, for mse, targets."""

    ids: np.ndarray  # indices into the training rows (`TrainSet.rows`), ascending
    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor  # float64
    neg: torch.Tensor | None = None
    target: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: torch.Tensor | np.ndarray) -> "Rows":
        keep_t = torch.as_tensor(keep, device=self.users.device)
        return Rows(
            self.ids[np.asarray(keep_t.cpu())],
            self.users[keep_t],
            self.items[keep_t],
            self.ratings[keep_t],
            None if self.neg is None else self.neg[:, keep_t],
            None if self.target is None else self.target[keep_t],
        )

    def without(self, ids: np.ndarray) -> "Rows":
        return self.subset(~np.isin(self.ids, ids))

    def touching(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
        """Mask of the rows whose user, item or a negative is in the given sets."""
        um = torch.zeros(n_users, dtype=torch.bool, device=self.users.device)
        im = torch.zeros(n_items, dtype=torch.bool, device=self.users.device)
        um[users], im[items] = True, True
        hit = um[self.users] | im[self.items]
        if self.neg is not None and self.neg.numel():
            hit |= im[self.neg].any(0)
        return hit

    def relabel(self, users: torch.Tensor, items: torch.Tensor | None) -> "Rows":
        """The rows with user ids as positions in `users` (sorted, holding every user of the rows)
        and, where given, item ids (negatives too) as positions in `items`: for tables cut down
        to those rows."""

        def pos(ids, table):
            return ids if table is None else torch.searchsorted(table, ids)

        return replace(
            self,
            users=pos(self.users, users),
            items=pos(self.items, items),
            neg=None if self.neg is None else pos(self.neg, items),
        )

    def with_targets(self, lo: float, hi: float) -> "Rows":
        """mse's targets: ratings scaled to [0, 1] by the objective's own (lo, hi), 1 when implicit."""
        t = torch.ones_like(self.ratings) if hi <= lo else (self.ratings - lo) / (hi - lo)
        return replace(self, target=t)


def make_rows(train, ids: np.ndarray, device) -> Rows:
    """`Rows` of the training rows `ids` (indices into `train`, an `Interactions`)."""
    ids = np.asarray(ids, dtype=np.int64)
    return Rows(
        ids,
        torch.as_tensor(train.users[ids], device=device),
        torch.as_tensor(train.items[ids], device=device),
        torch.as_tensor(train.ratings[ids].astype(np.float64), device=device),
    )


def draw_negatives(rows: Rows, positives: Rows, m: int, n_items: int, gen: torch.Generator) -> Rows:
    """`m` negatives per row, uniform and rejected against the row's user's positives in
    `positives` (as the sub-model's sampler rejects them), in the sampler's order."""
    if m == 0:
        return rows
    sampler = NegativeSampler(positives.users, positives.items, n_items)
    neg = sampler.sample(rows.users.repeat(m), gen).view(m, len(rows))
    return replace(rows, neg=neg)


_MISSING = object()


@contextmanager
def substituted(model, user_table: torch.Tensor, item_table: torch.Tensor, **attrs):
    """Evaluate `model` with its tables (and attributes such as LightGCN's adjacency) replaced."""
    names = table_names(model)
    saved = {n: model._parameters[n] for n in names}
    saved_attrs = {k: model.__dict__.get(k, _MISSING) for k in attrs}
    model._parameters[names[0]], model._parameters[names[1]] = user_table, item_table
    for k, v in attrs.items():
        setattr(model, k, v)
    try:
        yield model
    finally:
        model._parameters.update(saved)
        for k, v in saved_attrs.items():
            if v is _MISSING:
                model.__dict__.pop(k, None)
            else:
                setattr(model, k, v)


class Objective:
    """J(U, V) in sum form for one sub-model on fixed rows.

    `graph` (lightgcn): the rows whose normalised adjacency propagates (J_D reads D's graph, J_R
    R's); `users_only` (als): restrict J to the terms of these users (exact derivatives in their
    rows). Other sub-models are restricted through the rows they are given. `n_users`: the user
    table's size where the rows were relabelled for a cut-down table (`Rows.relabel`)."""

    def __init__(
        self,
        model,
        kind: str,
        rows: Rows,
        graph: Rows | None = None,
        users_only: torch.Tensor | None = None,
        als_weights: tuple | None = None,
        adjacency: torch.Tensor | None = None,
        n_users: int | None = None,
    ):
        self.model, self.kind, self.rows = model, kind, rows
        self.users_only = users_only
        self._adj = None
        if kind == "lightgcn":
            self._adj = adjacency_of(model, graph if graph is not None else rows) if adjacency is None else adjacency
        if kind == "wmf":
            self._gram = None
            if model.cfg["gram_items"] == "shard":
                g = graph if graph is not None else rows
                self._gram = torch.unique(g.items)
            self._user_rows = UserRows(
                rows.users.cpu().numpy(),
                rows.items.cpu().numpy(),
                model.n_users if n_users is None else n_users,
                model.n_items,
                model.device,
            )
        if kind == "als":
            self._cells = als_weights if als_weights is not None else als_cells(model, rows)

    def __call__(self, user_table: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        m, rows = self.model, self.rows
        if self.kind == "als":
            return als_objective(m, user_table, item_table, self._cells, self.users_only)
        if len(rows) == 0 and self.kind != "wmf":
            return (user_table.sum() + item_table.sum()) * 0.0
        if self.kind == "lightgcn":
            with substituted(m, user_table, item_table, _adj=self._adj, _cache=None):
                return m.loss((rows.users, rows.items, rows.neg[0])) * len(rows)
        if self.kind == "wmf":
            total = (user_table.sum() + item_table.sum()) * 0.0
            users = self._user_rows.users
            bs = int(m.cfg["batch_size"])
            with substituted(m, user_table, item_table, _gram_items=self._gram):
                for s in range(0, len(users), bs):
                    batch = users[s : s + bs]
                    local, items = self._user_rows.gather(batch)
                    total = total + m.loss((batch, local, items))
            return total
        with substituted(m, user_table, item_table):
            if self.kind == "bpr":
                return m.loss((rows.users, rows.items, rows.neg[0])) * len(rows)
            if self.kind == "bce":
                return m.loss((rows.users, rows.items, rows.neg)) * len(rows)
            return m.loss((rows.users, rows.items, rows.target.to(user_table.dtype), rows.neg)) * len(rows)


def adjacency_of(model, rows: Rows) -> torch.Tensor:
    """LightGCN's normalised adjacency of `rows`, in the dtype of the model's tables."""
    adj = normalized_adjacency(
        rows.users.cpu().numpy(), rows.items.cpu().numpy(), model.n_users, model.n_items, model.device
    )
    return adj.to(tables(model)[0].dtype)


def als_cells(model: ImplicitALS, rows: Rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The observed cells of `rows` (duplicates summed) and their weights w = c - 1, computed as
    the model computes them from exactly these cells (what a fit on them would use)."""
    keys, inverse = torch.unique(rows.users * model.n_items + rows.items, sorted=True, return_inverse=True)
    raw = torch.zeros(len(keys), dtype=torch.float64, device=keys.device).index_add_(0, inverse, rows.ratings)
    u, i = keys // model.n_items, keys % model.n_items
    return u, i, model.confidence_weights(u, i, raw)


def als_objective(model: ImplicitALS, x: torch.Tensor, y: torch.Tensor, cells, users: torch.Tensor | None):
    """sum_all c (p - x.y)^2 + reg (|X|^2 + |Y|^2), differentiable (ImplicitALS.objective's Gram
    trick); restricted to the terms of `users` when given (the items' reg is then left out)."""
    u, i, w = cells
    reg = float(model.cfg["reg"])
    if users is not None:
        keep = torch.isin(u, users)
        u, i, w = u[keep], i[keep], w[keep]
        xs = x[users]
        total = ((xs.T @ xs) * (y.T @ y)).sum() + reg * (xs * xs).sum()
    else:
        total = ((x.T @ x) * (y.T @ y)).sum() + reg * ((x * x).sum() + (y * y).sum())
    s = (x[u] * y[i]).sum(1)
    c = 1.0 + w.to(s.dtype)
    return total + (c * (1.0 - s) ** 2 - s * s).sum()
