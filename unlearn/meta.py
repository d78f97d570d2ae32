"""EEMU's meta-learning (first-order MAML over users) and inference-time adaptation, for the
`twotower` sub-model, vectorised over users.

Meta-training one shard (`meta_train`): each epoch the shard's users with a query row are
shuffled (the shard's generator) and taken in batches of `meta_batch`; every row gets one sampled
negative per epoch, rejected against the shard's own positives, and with `in_batch_negative` (the
released default) a second one drawn from the other users' rows of its batch (`in_batch_negatives`);
a row's loss is the mean over its negatives.
- `meta_update: sequential` (the released code): per user, the weights are reset to the batch-start
  weights, one step of the shared Adam on the user's support loss, the query loss at the adapted
  weights divided by the batch size, its gradient applied to the meta-weights by the same Adam
  (one Adam state for inner and outer steps), user after user.
- `meta_update: batched`: every user's first-order meta-gradient of the batch at once
  (`torch.func.grad` inside `vmap`, no Python loop over users): adapted weights = batch-start
  weights minus one fresh-Adam step on the support loss (what inference does), gradient of the
  query loss there; their mean is applied by the outer Adam.
Model selection: every `eval_every` epochs, validation `early_stop_metric` of the adapted shard
model on a fixed, seeded sample of at most `valid_users` validation users (never test); the best
epoch's weights are kept, `patience` evaluations without improvement stop training.

Adaptation (`Adapter`): per (user, shard) one step of a fresh Adam (= `lr * g / (|g| + eps)`, the
first Adam step exactly) on `n_adapt` of the user's rows drawn with replacement by a softmax over
inverse item degree at `temperature`, one uniform negative each (rejected against the user's rows),
then every item is scored. The rows it may read are given to it: at inference the method's retained
rows (degrees recomputed from them), during a shard's training that shard's rows. Its random
numbers are a counter-based stream (splitmix64) keyed by (seed, shard, user, draw), so every
(seed, shard, user) has its own stream and drawing for many users at once is vectorised.
`adapt: all` adapts every weight (an item-tower pass over all items per user and shard),
`adapt: user_tower` the user tower only (item vectors computed once per shard).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.func import grad, vmap

from .data.csr import CSR
from .data.interactions import Interactions, TrainSet
from .errors import ConfigError
from .metrics.timing import clock
from .seeding import numpy_rng
from .training import STOPPING_DEFAULTS, EarlyStopping, NegativeSampler, redraw_positives

META_UPDATES = ("batched", "sequential")
ADAPT = ("user_tower", "all")
EPS = 1e-8


def fresh_adam_step(g: torch.Tensor, lr: float) -> torch.Tensor:
    """The first step of a freshly created Adam (bias-corrected moments equal g and g^2)."""
    return lr * g / (g.abs() + EPS)


# -- counter-based random numbers (one stream per key and user) ------------------------------
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def stream_uniforms(key: int, users: np.ndarray, n: int, salt: int) -> np.ndarray:
    """(len(users), n) uniforms in [0, 1): draw j of stream (key, user), `salt` separating uses."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(key & 0x7FFFFFFFFFFFFFFF) ^ _mix(users.astype(np.uint64)))
        x = _mix(base[:, None] + np.uint64(salt) * np.uint64(0x100000001B3)
                 + np.arange(n, dtype=np.uint64)[None, :])
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# -- padded per-user row sets ----------------------------------------------------------------
class Grouped:
    """Row indices grouped by user (ascending row order within a user)."""

    def __init__(self, row_users: np.ndarray, rows: np.ndarray, n_users: int):
        order = np.argsort(row_users[rows], kind="stable")
        self.rows = rows[order]
        self.counts = np.bincount(row_users[self.rows], minlength=n_users)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)])

    def padded(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(users), L) row indices (0 where padded) and their 0/1 mask."""
        c = self.counts[users]
        width = max(int(c.max()) if len(c) else 0, 1)
        col = np.arange(width)[None, :]
        mask = col < c[:, None]
        idx = np.where(mask, self.indptr[users][:, None] + col, 0)
        if len(self.rows) == 0:
            return idx, mask
        return self.rows[idx], mask


# -- losses as functions of (params, buffers) -------------------------------------------------
def user_loss(model, params: dict, buffers: dict, user, pos, neg, mask) -> torch.Tensor:
    """One user's mean margin loss over its (masked) rows."""
    return model.margin_loss({**buffers, **params}, user, pos, neg, mask)


def user_meta_grad(model, params: dict, buffers: dict, inner_lr: float, user, s_pos, s_neg, s_mask,
                   q_pos, q_neg, q_mask) -> dict:
    """One user's first-order meta-gradient: the query loss's gradient at the weights after one
    fresh-Adam step on the support loss (the support loss reads only this user's support rows)."""
    gs = grad(lambda pr: user_loss(model, pr, buffers, user, s_pos, s_neg, s_mask))(params)
    adapted = {k: params[k] - fresh_adam_step(gs[k], inner_lr) for k in params}
    return grad(lambda pr: user_loss(model, pr, buffers, user, q_pos, q_neg, q_mask))(adapted)


def batched_meta_grad(model, params: dict, buffers: dict, inner_lr: float, users, s_pos, s_neg, s_mask,
                      q_pos, q_neg, q_mask) -> dict:
    """Mean over the batch of every user's first-order meta-gradient, all at once (vmap)."""
    per_user = vmap(lambda *a: user_meta_grad(model, params, buffers, inner_lr, *a))(
        users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask)
    return {k: v.mean(0) for k, v in per_user.items()}


def in_batch_negatives(sampler: NegativeSampler, users: torch.Tensor, pool_items: torch.Tensor,
                       fallback: torch.Tensor, gen: torch.Generator, max_rounds: int = 20) -> torch.Tensor:
    """One in-batch negative per entry of `users` (the released meta-training's second negative):
    the item of a row drawn uniformly from the meta-batch's rows (`pool_items`: its users' support
    and query rows, all rows of this shard), redrawn while it is one of the user's positives in this
    shard (`redraw_positives`; the user's own rows are among those). An entry still bad after
    `max_rounds` (a batch of one user) takes its `fallback` (the out-of-batch negative)."""
    shape, users = users.shape, users.reshape(-1)
    if len(pool_items) == 0:
        return fallback

    def bad(idx, pick):
        return sampler.is_positive(users[idx], pool_items[pick])

    def draw(size):
        return torch.randint(0, len(pool_items), (size,), generator=gen).to(users.device)

    pick = redraw_positives(draw(len(users)), bad, draw, max_rounds)
    items = pool_items[pick]
    still = bad(torch.arange(len(users), device=users.device), pick)
    return torch.where(still, fallback.reshape(-1), items).reshape(shape)


def split_tensors(model) -> tuple[dict, dict]:
    params = {n: p for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}
    return params, buffers


# -- adaptation at inference ---------------------------------------------------------------------
class Adapter:
    """Adapts a shard model to users from the rows it is given, and scores every item."""

    def __init__(self, rows: Interactions, n_users: int, n_items: int, cfg: dict, device: torch.device):
        self.n_users, self.n_items, self.device = n_users, n_items, device
        self.n_adapt = int(cfg["n_adapt"])
        self.lr = float(cfg["adapt_lr"])
        self.temperature = float(cfg["temperature"])
        self.mode = str(cfg["adapt"])
        order = np.lexsort((rows.items, rows.users))
        self.items = rows.items[order]
        self.counts = np.bincount(rows.users, minlength=n_users)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)])
        degree = np.bincount(rows.items, minlength=n_items).astype(np.float64)  # from these rows only
        self.logit = (1.0 / np.maximum(degree, 1.0)) / self.temperature
        self.csr = CSR(rows, n_users, n_items, torch.device("cpu"))

    def sets(self, users: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(len(users), n_adapt) positives and negatives, and which users have rows at all."""
        users = np.asarray(users, dtype=np.int64)
        n, c = self.n_adapt, self.counts[users]
        has = c > 0
        pos = np.zeros((len(users), n), dtype=np.int64)
        neg = np.zeros((len(users), n), dtype=np.int64)
        if not has.any():
            return pos, neg, has
        hu, hc = users[has], c[has]
        start = self.indptr[hu]
        seg = np.repeat(np.arange(len(hu)), hc)
        flat = np.arange(hc.sum()) - np.repeat(np.cumsum(hc) - hc, hc) + np.repeat(start, hc)
        items = self.items[flat]
        logit = self.logit[items]
        seg_start = np.cumsum(hc) - hc
        w = np.exp(logit - np.maximum.reduceat(logit, seg_start)[seg])
        cw = np.cumsum(w)
        base = np.where(seg_start > 0, cw[np.maximum(seg_start - 1, 0)], 0.0)
        total = cw[seg_start + hc - 1] - base
        u = stream_uniforms(key, hu, n, salt=0)
        target = base[:, None] + u * total[:, None]
        pick = np.searchsorted(cw, target, side="right")
        pick = np.clip(pick, seg_start[:, None], (seg_start + hc - 1)[:, None])
        pos[has] = items[pick]
        # negatives: uniform, rejected against the user's rows (fresh draws of the same stream)
        ng = np.floor(stream_uniforms(key, hu, n, salt=1) * self.n_items).astype(np.int64)
        hu_t = torch.as_tensor(hu)
        for r in range(2, 22):
            bad = self.csr.contains(hu_t, torch.as_tensor(ng)).numpy()
            if not bad.any():
                break
            fresh = np.floor(stream_uniforms(key, hu, n, salt=r) * self.n_items).astype(np.int64)
            ng = np.where(bad, fresh, ng)
        neg[has] = ng
        return pos, neg, has

    def score(self, model, users: torch.Tensor, key: int) -> torch.Tensor:
        """(len(users), n_items) scores of `model` adapted to each user (users of one block)."""
        pos, neg, has = self.sets(users.cpu().numpy(), key)
        dev = users.device
        pos, neg = torch.as_tensor(pos, device=dev), torch.as_tensor(neg, device=dev)
        mask = torch.as_tensor(has, device=dev, dtype=torch.float32)[:, None].expand(-1, self.n_adapt)
        params, buffers = split_tensors(model)
        params = {k: v.detach() for k, v in params.items()}
        lr = self.lr
        with torch.enable_grad():
            if self.mode == "user_tower":
                # The user tower's weights, with the user's embedding rows taken as the gathered
                # input x (each row enters the loss once, so its gradient is x's gradient and the
                # elementwise fresh-Adam step on x equals the step on the tables' rows), without
                # per-user copies of whole embedding tables.
                p = {**buffers, **params}
                iv = model.item_vec(p)
                xs = model.user_input(p, users)
                mlp = {k: params[k] for k in model.user_keys() if k.startswith("ul")}
                margin = float(model.cfg["margin"])

                def one(x, ps, ng, m):
                    def loss(pu):
                        u = model.user_mlp(pu, pu["x"])
                        diff = (u * iv[ps]).sum(-1) - (u * iv[ng]).sum(-1)
                        return (torch.relu(margin - diff) * m).sum() / m.sum().clamp(min=1.0)

                    pu = {"x": x, **mlp}
                    g = grad(loss)(pu)
                    a = {k: pu[k] - fresh_adam_step(g[k], lr) for k in pu}
                    return model.user_mlp(a, a["x"])

                uv = vmap(one)(xs, pos, neg, mask)
                return (uv @ iv.T).detach()

            def one_all(user, ps, ng, m):
                g = grad(lambda pr: user_loss(model, pr, buffers, user, ps, ng, m))(params)
                p2 = {**buffers, **{k: params[k] - fresh_adam_step(g[k], lr) for k in params}}
                return model.user_vec(p2, user) @ model.item_vec(p2).T

            return vmap(one_all)(users, pos, neg, mask).detach()


def check_config(cfg: dict) -> None:
    if cfg["meta_update"] not in META_UPDATES:
        raise ConfigError(f"Unknown method.meta_update '{cfg['meta_update']}'. Valid: {', '.join(META_UPDATES)}.")
    if cfg["adapt"] not in ADAPT:
        raise ConfigError(f"Unknown method.adapt '{cfg['adapt']}'. Valid: {', '.join(ADAPT)}.")
    for key in ("meta_batch", "n_adapt", "score_block"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"method.{key} must be at least 1, got {cfg[key]}.")


def blocked_scores(adapter: Adapter, model, users: torch.Tensor, key: int, block: int) -> torch.Tensor:
    return torch.cat([adapter.score(model, users[s:s + block], key) for s in range(0, len(users), block)])


def validation_sample(data: TrainSet, n: int, seed: int) -> TrainSet:
    """The shard's data with its validation rows cut to a fixed, seeded sample of at most n users:
    a fixed random order of the whole id universe, first n of those with validation rows."""
    valid = data.valid
    if n <= 0 or len(np.unique(valid.users)) <= n:
        return data
    order = numpy_rng(seed, "eemu", "valid_users").permutation(data.n_users)
    present = np.zeros(data.n_users, dtype=bool)
    present[valid.users] = True
    chosen = np.zeros(data.n_users, dtype=bool)
    chosen[order[present[order]][:n]] = True
    return TrainSet(data.n_users, data.n_items, data.train, valid.of_users(chosen))


def meta_train(model, data: TrainSet, query: np.ndarray, cfg: dict, seed: int, runtime, valid_seed: int,
               shard_key: int) -> dict:
    """First-order MAML of `model` (a `twotower`, built) on one shard: `data.train` rows with their
    `query` flags. Returns the training report (epochs, best epoch, validation curve, seconds)."""
    start = time.perf_counter()
    if runtime.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    model.reset_parameters(gen)
    dev = runtime.device
    model.to(dev)
    train = data.train
    row_users = train.users
    n_rows = len(train)
    allrows = np.arange(n_rows)
    support = Grouped(row_users, allrows[~query], data.n_users)
    queries = Grouped(row_users, allrows[query], data.n_users)
    meta_users = np.flatnonzero(queries.counts > 0)
    users_t = torch.as_tensor(row_users, device=dev)
    items_t = torch.as_tensor(train.items, device=dev)
    sampler = NegativeSampler(users_t, items_t, data.n_items)
    params, buffers = split_tensors(model)
    opt = torch.optim.Adam(list(params.values()), lr=float(cfg["lr"]))
    stop_cfg = {k: cfg[k] for k in STOPPING_DEFAULTS if k in cfg}
    vdata = validation_sample(data, int(cfg["valid_users"]), valid_seed)
    stopper = EarlyStopping(vdata, stop_cfg, runtime)
    adapter = Adapter(train, data.n_users, data.n_items, cfg, dev) if stopper.evaluator is not None else None
    block, inner_lr, bsz = int(cfg["score_block"]), float(cfg["inner_lr"]), int(cfg["meta_batch"])
    sequential = cfg["meta_update"] == "sequential"
    in_batch = bool(cfg["in_batch_negative"])

    def score_fn(users):
        return blocked_scores(adapter, model, users, shard_key, block)

    epoch_s = []
    for epoch in range(1, int(cfg["meta_epochs"]) + 1):
        t0 = clock()
        perm = torch.randperm(len(meta_users), generator=gen).numpy()
        neg_t = sampler.sample(users_t, gen)
        for s in range(0, len(perm), bsz):
            batch = meta_users[perm[s:s + bsz]]
            srow, smask = support.padded(batch)
            qrow, qmask = queries.padded(batch)
            srow_t, qrow_t = torch.as_tensor(srow, device=dev), torch.as_tensor(qrow, device=dev)
            s_neg, q_neg = neg_t[srow_t], neg_t[qrow_t]
            if in_batch:  # a second negative per row, from the other users' rows of this batch
                pool = torch.as_tensor(np.concatenate([srow[smask], qrow[qmask]]), device=dev)
                batch_t = torch.as_tensor(batch, device=dev)
                s_neg, q_neg = (torch.stack([n, in_batch_negatives(
                    sampler, batch_t[:, None].expand_as(n), items_t[pool], n, gen)], -1)
                    for n in (s_neg, q_neg))
            args = (torch.as_tensor(batch, device=dev), items_t[srow_t], s_neg,
                    torch.as_tensor(smask, device=dev, dtype=torch.float32),
                    items_t[qrow_t], q_neg, torch.as_tensor(qmask, device=dev, dtype=torch.float32))
            if sequential:
                _sequential_batch(model, params, buffers, opt, args)
            else:
                g = batched_meta_grad(model, {k: v.detach() for k, v in params.items()}, buffers, inner_lr, *args)
                for k, p in params.items():
                    p.grad = g[k]
                opt.step()
                opt.zero_grad(set_to_none=True)
        epoch_s.append(clock() - t0)
        if stopper.step(epoch, score_fn, model):
            break
    stopper.restore(model)
    model.zero_grad(set_to_none=True)
    model.eval()
    runtime.sync()
    report = stopper.report(start)
    report["epoch_s"] = float(np.mean([e.wall for e in epoch_s])) if epoch_s else 0.0
    report["epoch_cpu_s"] = float(np.mean([e.cpu for e in epoch_s])) if epoch_s else 0.0
    report["meta_users"] = int(len(meta_users))
    return report


def _sequential_batch(model, params: dict, buffers: dict, opt: torch.optim.Optimizer, args) -> None:
    """The released per-user update (see the module docstring)."""
    users, s_pos, s_neg, s_mask, q_pos, q_neg, q_mask = args
    names = list(params)
    with torch.no_grad():
        start = {k: params[k].detach().clone() for k in names}
    b = len(users)
    for j in range(b):
        with torch.no_grad():
            meta = {k: params[k].detach().clone() for k in names}
            for k in names:
                params[k].copy_(start[k])
        opt.zero_grad(set_to_none=True)
        user_loss(model, params, buffers, users[j], s_pos[j], s_neg[j], s_mask[j]).backward()
        opt.step()  # inner step (shared Adam state)
        opt.zero_grad(set_to_none=True)
        (user_loss(model, params, buffers, users[j], q_pos[j], q_neg[j], q_mask[j]) / b).backward()
        grads = {k: (params[k].grad.clone() if params[k].grad is not None else torch.zeros_like(params[k])) for k in names}
        with torch.no_grad():
            for k in names:
                params[k].copy_(meta[k])
                params[k].grad = grads[k]
        opt.step()  # outer step on the meta-weights
    opt.zero_grad(set_to_none=True)
