"""The rows one influence step reads: D's and R's rows for the objectives, the negatives drawn once
for the request, the cut-down tables of a users block, and IFRU's changed nodes on LightGCN."""

from __future__ import annotations

import numpy as np
import torch

from .blocks import Block
from .objective import Rows, decomposable, draw_negatives, make_rows, n_negatives


def spillover_nodes(before: Rows, after: Rows, forget: Rows, n_users: int, n_items: int, ratio: float):
    """Users and items of F whose degree fell by more than `ratio` (IFRU's changed nodes)."""

    def degrees(rows):
        return (torch.bincount(rows.users, minlength=n_users), torch.bincount(rows.items, minlength=n_items))

    (bu, bi), (au, ai) = degrees(before), degrees(after)
    fu, fi = torch.unique(forget.users), torch.unique(forget.items)
    drop_u = 1.0 - au[fu].double() / bu[fu].clamp_min(1).double()
    drop_i = 1.0 - ai[fi].double() / bi[fi].clamp_min(1).double()
    return fu[drop_u > ratio], fi[drop_i > ratio]


def request_rows(
    m,
    kind: str,
    train,
    before_ids: np.ndarray,
    kept_after: np.ndarray,
    forget: np.ndarray,
    block: Block,
    gen: torch.Generator,
    needs_graph: bool,
):
    """(D's rows, R's rows, the rows J_D reads, the rows J_R reads, the cut-down tables' ids);
    D's and R's rows are None where J does not read them. Negatives are drawn once, for the
    rows J_D reads; where the sub-model allows it, those are only the rows whose loss reads the
    block. A users block of such a sub-model is evaluated on tables cut down to its users (and,
    for bpr, bce and mse, to the items its rows read): the ids are (users, items or None)."""
    device = block.users.device
    full = make_rows(train, before_ids, device)
    k = n_negatives(m, kind, train.ratings[before_ids])
    only_users = len(block.items) == 0 and decomposable(kind)
    if only_users:  # the users' rows are all the loss reads of them
        d_rows = full.subset(torch.isin(full.users, block.users))
        positives = d_rows
    else:
        d_rows, positives = full, full
    d_rows = draw_negatives(d_rows, positives, k, m.n_items, gen)
    r_rows = d_rows.without(forget)
    if kind == "mse":
        d_rows = d_rows.with_targets(*_range(train.ratings[before_ids]))
        r_rows = r_rows.with_targets(*_range(train.ratings[kept_after]))
    if not only_users and kind in ("bpr", "bce", "mse"):
        d_rows = d_rows.subset(d_rows.touching(block.users, block.items, m.n_users, m.n_items))
        r_rows = r_rows.subset(r_rows.touching(block.users, block.items, m.n_users, m.n_items))
    local = None
    if only_users:
        items = None
        if kind in ("bpr", "bce", "mse"):
            read = [d_rows.items] + ([d_rows.neg.reshape(-1)] if d_rows.neg is not None else [])
            items = torch.unique(torch.cat(read))
        local = (block.users, items)
        d_rows, r_rows = d_rows.relabel(*local), r_rows.relabel(*local)
    if not needs_graph:
        return None, None, d_rows, r_rows, local
    return full, full.without(forget), d_rows, r_rows, local


def _range(ratings: np.ndarray) -> tuple[float, float]:
    return (float(ratings.min()), float(ratings.max())) if len(ratings) else (0.0, 0.0)
