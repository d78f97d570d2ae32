"""The closed-form dot-product gradient (`analytic.DotProductGrads`) as two compiled CPU loops.

On CPU the torch form of the step materialises (B, K, d) products several times and pays a
kernel launch per operation; these loops read each gathered row once and accumulate straight
into the gradient tables. They run on one thread in a fixed order, so the result is the same
bits for any thread count and a fit stays a deterministic function of its seed and data. They
round differently from the torch form (float32 sums in the order LLVM vectorises them), which
CUDA tensors keep using.

`keep` is the user vectors' dropout mask (B, d; 0 or 1) with `scale` = 1 / (1 - p), or an empty
(0, 0) array with scale 1 when nothing is dropped.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# reassociation lets LLVM vectorise the dot products (a fixed reordering chosen at compile
# time: still the same bits on every call)
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def scores(user_emb, item_emb, users, items, keep, scale, out):
    """out[b, k] = (u_b * keep_b * scale) . v[items[b, k]]."""
    n_rows, n_slots = items.shape
    d = user_emb.shape[1]
    drop = keep.shape[0] > 0
    for b in range(n_rows):
        u = users[b]
        for k in range(n_slots):
            it = items[b, k]
            acc = np.float32(0.0)
            if drop:
                for x in range(d):
                    acc += (user_emb[u, x] * keep[b, x] * scale) * item_emb[it, x]
            else:
                for x in range(d):
                    acc += user_emb[u, x] * item_emb[it, x]
            out[b, k] = acc


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def scatter(user_emb, item_emb, users, items, g, c, keep, scale, user_grad, item_grad, stale_users, stale_items):
    """Zero the gradient rows the previous batch wrote (`stale_*`: every other row is zero
    already), then add every row's du = sum_k g[b, k] v_bk + c u_b (through the dropout) and
    dv_bk = g[b, k] u_b + c v_bk."""
    n_rows, n_slots = items.shape
    d = user_emb.shape[1]
    drop = keep.shape[0] > 0
    for r in range(stale_users.shape[0]):
        user_grad[stale_users[r], :] = 0.0
    for r in range(stale_items.shape[0]):
        item_grad[stale_items[r], :] = 0.0
    uv = np.empty(d, dtype=user_emb.dtype)
    du = np.empty(d, dtype=user_emb.dtype)
    for b in range(n_rows):
        u = users[b]
        for x in range(d):
            uv[x] = user_emb[u, x] * keep[b, x] * scale if drop else user_emb[u, x]
            du[x] = c * uv[x]
        for k in range(n_slots):
            it = items[b, k]
            gk = g[b, k]
            for x in range(d):
                vx = item_emb[it, x]
                du[x] += gk * vx
                item_grad[it, x] += gk * uv[x] + c * vx
        if drop:
            for x in range(d):
                user_grad[u, x] += du[x] * keep[b, x] * scale
        else:
            for x in range(d):
                user_grad[u, x] += du[x]


# `contract` lets LLVM fuse g * g + s into one FMA, as torch's fused CPU Adagrad kernel does: with
# it the rows below get the same bits as torch.optim.Adagrad(fused=True) on this machine (measured
# over 20 steps of a 5000 x 64 table); without it about one entry in ten differs in the last bit.
# error_model="numpy" drops Python's zero-division check, which kept the loop from vectorising
# (3-4.7x slower, same bits; the denominator is at least eps anyway)
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def adagrad_rows(param, state_sum, grad, rows, mark, lr, eps):
    """Adagrad (no weight decay, no lr decay) on the distinct `rows` of a table only:
    s += g * g; p -= lr * g / (sqrt(s) + eps). Every other row has a zero gradient, for which that
    update changes nothing, so this is the dense step. `mark` (one flag per table row, all false
    on entry and on return) skips repeated rows."""
    d = param.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        if mark[r]:
            continue
        mark[r] = True
        for x in range(d):
            g = grad[r, x]
            s = g * g + state_sum[r, x]
            state_sum[r, x] = s
            param[r, x] = param[r, x] - lr * g / (np.sqrt(s) + eps)
    for i in range(rows.shape[0]):
        mark[rows[i]] = False


@njit(cache=True, nogil=True, error_model="numpy")
def bpr_score_grad(s, g):
    """BPR's dL/ds of -mean log sigmoid(s_pos - s_neg) for a (B, 2) score block: g[b] = (t, -t),
    t = -sigmoid(s_neg - s_pos) / B, in float32 as `BPRMF.score_grad` writes it (sigmoid through
    libm's expf here, torch's vectorised exp there: a last-bit difference on a few percent of rows)."""
    n = s.shape[0]
    neg_n = np.float32(-n)
    for b in range(n):
        x = s[b, 1] - s[b, 0]
        t = (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))) / neg_n
        g[b, 0] = t
        g[b, 1] = -t


@njit(cache=True, nogil=True, error_model="numpy")
def bpr_adagrad_batches(
    user_emb,
    item_emb,
    users,
    slots,
    items_flat,
    uniforms,
    p,
    scale,
    batch,
    reg,
    lr,
    eps,
    user_grad,
    item_grad,
    user_sum,
    item_sum,
    user_mark,
    item_mark,
    stale_users,
    stale_items,
    s_buf,
    g_buf,
    keep_buf,
):
    """Consecutive BPR batches of `batch` rows (the last may be short) with Adagrad's row step,
    each exactly the per-batch compiled step (`scores`, the closed-form dL/ds, `scatter`,
    `adagrad_rows` on the batch's rows) without returning to Python between batches. `slots` is
    (N, 2) (positive, negative), `items_flat` its row-major flattening; `uniforms` the rows'
    dropout draws (N, d; an entry is kept where its draw >= p, a float32 as torch compares it) or
    (0, 0). Returns the number of batches; the gradient tables hold the last batch's gradient (rows
    users[last], items_flat[last]) as after the per-batch step."""
    n = users.shape[0]
    d = user_emb.shape[1]
    drop = uniforms.shape[0] > 0
    n_batches = 0
    for start in range(0, n, batch):
        end = min(start + batch, n)
        b = end - start
        ub = users[start:end]
        sb = slots[start:end]
        ib = items_flat[2 * start : 2 * end]
        # both C-contiguous ((0, d) when nothing is dropped), so `scores` and `scatter` run the
        # specialisation the per-batch step calls (a strided view made the dropout path 3x slower)
        kb = keep_buf[:b] if drop else keep_buf[:0]
        if drop:
            for r in range(b):
                for x in range(d):
                    kb[r, x] = np.float32(1.0) if uniforms[start + r, x] >= p else np.float32(0.0)
        s = s_buf[:b]
        g = g_buf[:b]
        scores(user_emb, item_emb, ub, sb, kb, scale, s)
        bpr_score_grad(s, g)
        if n_batches > 0:  # the rows the previous (full) batch wrote
            stale_users, stale_items = users[start - batch : start], items_flat[2 * (start - batch) : 2 * start]
        scatter(user_emb, item_emb, ub, sb, g, reg / b, kb, scale, user_grad, item_grad, stale_users, stale_items)
        adagrad_rows(user_emb, user_sum, user_grad, ub, user_mark, lr, eps)
        adagrad_rows(item_emb, item_sum, item_grad, ib, item_mark, lr, eps)
        n_batches += 1
    return n_batches
