"""EEMU's two meta-update rules for one meta-batch (see `meta.py`'s docstring): `batched`, every
user's first-order meta-gradient at once (vmap), and `sequential`, the released per-user loop
through one shared Adam."""

from __future__ import annotations

import torch
from torch.func import grad, vmap

from .adapt import fresh_adam_step, user_loss


def user_meta_grad(
    model, params: dict, buffers: dict, inner_lr: float, outer: str, user, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask
) -> dict:
    """One user's first-order meta-gradient: the query loss's gradient at the weights after one
    fresh-Adam step on the support loss (which reads only this user's support rows), plus, with
    `outer: query_support`, the support loss's gradient at `params`."""
    gs = grad(lambda pr: user_loss(model, pr, buffers, user, s_pos, s_neg, s_mask))(params)
    adapted = {k: params[k] - fresh_adam_step(gs[k], inner_lr) for k in params}
    gq = grad(lambda pr: user_loss(model, pr, buffers, user, q_pos, q_neg, q_mask))(adapted)
    if outer == "query_support":
        return {k: gq[k] + gs[k] for k in gq}
    return gq


def batched_meta_grad(
    model, params: dict, buffers: dict, inner_lr: float, outer: str, users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask
) -> dict:
    """Mean over the batch of every user's first-order meta-gradient, all at once (vmap)."""
    per_user = vmap(lambda *a: user_meta_grad(model, params, buffers, inner_lr, outer, *a))(
        users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask
    )
    return {k: v.mean(0) for k, v in per_user.items()}


def _sequential_batch(model, params: dict, buffers: dict, opt: torch.optim.Optimizer, outer: str, args) -> None:
    """The released per-user update (see the module docstring); `outer: query_support` adds the
    user's support gradient at the batch-start weights (the one the inner step took) to the
    outer gradient, divided by the batch size as the query gradient is."""
    users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask = args
    names = list(params)
    with torch.no_grad():
        start = {k: params[k].detach().clone() for k in names}
    b = len(users)

    def grads_of():
        return {
            k: (params[k].grad.clone() if params[k].grad is not None else torch.zeros_like(params[k])) for k in names
        }

    for j in range(b):
        with torch.no_grad():
            meta = {k: params[k].detach().clone() for k in names}
            for k in names:
                params[k].copy_(start[k])
        opt.zero_grad(set_to_none=True)
        user_loss(model, params, buffers, users[j], s_pos[j], s_neg[j], s_mask[j]).backward()
        g_support = grads_of() if outer == "query_support" else None
        opt.step()  # inner step (shared Adam state)
        opt.zero_grad(set_to_none=True)
        (user_loss(model, params, buffers, users[j], q_pos[j], q_neg[j], q_mask[j]) / b).backward()
        grads = grads_of()
        if g_support is not None:
            grads = {k: grads[k] + g_support[k] / b for k in names}
        with torch.no_grad():
            for k in names:
                params[k].copy_(meta[k])
                params[k].grad = grads[k]
        opt.step()  # outer step on the meta-weights
    opt.zero_grad(set_to_none=True)
