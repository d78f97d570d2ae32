"""EEMU's meta-training of one shard: first-order MAML over users for the `twotower` sub-model.

Each meta-epoch the shard's users with a query row are shuffled (the shard's generator) and taken
in batches of `meta_batch`; every row gets one sampled negative per epoch, rejected against the
shard's own positives, and with `in_batch_negative` (the released default) a second one drawn from
the other users' rows of its batch (`in_batch_negatives`); a row's loss is the mean over its
negatives.

- `meta_update: sequential` (the released code): per user, the weights are reset to the batch-start
  weights, one step of the shared Adam on the user's support loss, the query loss at the adapted
  weights divided by the batch size, its gradient applied to the meta-weights by the same Adam
  (one Adam state for inner and outer steps), user after user.
- `meta_update: batched`: every user's first-order meta-gradient of the batch at once
  (`torch.func.grad` inside `vmap`, no Python loop over users): adapted weights = batch-start
  weights minus one fresh-Adam step on the support loss (what inference does), gradient of the
  query loss there; their mean is applied by the outer Adam.

`outer` is what the outer gradient trains on. `query`: the query loss at the adapted weights
(first-order MAML as written). `query_support`: plus the support loss's gradient at the
batch-start weights. The released shared Adam carries each user's support gradient into the
meta-weights through its first moment, so the released update in effect trains on the support
rows too; `query_support` makes that explicit, and without it `batched` learns from one row per
user and shard.

Model selection is per shard, so a retrained shard is the same computation alone or in the
ensemble: `selection: best_valid` evaluates, every `eval_every` meta-epochs, validation
`early_stop_metric` of the adapted shard model on a fixed, seeded sample of at most `valid_users`
validation users (never test), keeps the best evaluation's weights and stops after `patience`
epochs without improvement, never before `min_epochs` (the shared `EarlyStopping`);
`selection: last` runs `meta_epochs` and keeps the last weights. A shard sees only its own rows:
validation masks and adapts from them (the user's rows in other shards stay candidates), which
exactness requires.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.csr import rows_by_user
from ...data.interactions import TrainSet
from ...errors import ConfigError
from ...metrics.timing import clock
from ...seeding import numpy_rng
from ...training import SELECTIONS, STOPPING_DEFAULTS, EarlyStopping, NegativeSampler, redraw_positives
from .adapt import ADAPT, Adapter, blocked_scores, split_tensors, user_loss  # noqa: F401  (user_loss: re-exported)
from .updates import _sequential_batch, batched_meta_grad, user_meta_grad  # noqa: F401  (user_meta_grad: re-exported)

log = logging.getLogger(__name__)

META_UPDATES = ("batched", "sequential")
OUTERS = ("query", "query_support")


def in_batch_negatives(
    sampler: NegativeSampler,
    users: torch.Tensor,
    pool_items: torch.Tensor,
    fallback: torch.Tensor,
    gen: torch.Generator,
    max_rounds: int = 20,
) -> torch.Tensor:
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


def check_config(cfg: dict) -> None:
    for key, valid in (("meta_update", META_UPDATES), ("outer", OUTERS), ("adapt", ADAPT), ("selection", SELECTIONS)):
        if cfg[key] not in valid:
            raise ConfigError(f"Unknown method.{key} '{cfg[key]}'. Valid: {', '.join(valid)}.")
    for key in ("meta_batch", "n_adapt", "score_block", "meta_epochs"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"method.{key} must be at least 1, got {cfg[key]}.")


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


@dataclass
class _MetaRun:
    """What one shard's meta-training reads at every batch."""

    model: object
    params: dict
    buffers: dict
    opt: torch.optim.Optimizer
    sampler: NegativeSampler
    support: object  # the shard's support rows by user (`rows_by_user`)
    queries: object  # its query rows by user
    meta_users: np.ndarray  # the users with a query row
    users_t: torch.Tensor  # the shard's rows' users and items, on the device
    items_t: torch.Tensor
    dev: object
    inner_lr: float
    bsz: int
    sequential: bool
    outer: str
    in_batch: bool


def meta_train(
    model,
    data: TrainSet,
    query: np.ndarray,
    cfg: dict,
    seed: int,
    runtime,
    valid_seed: int,
    shard_key: int,
    shard: int = 0,
) -> dict:
    """First-order MAML of `model` (a `twotower`, built) on one shard: `data.train` rows with their
    `query` flags. Returns the training report (epochs, best epoch, validation curve, seconds).
    `shard` names the shard in the log and the progress bar."""
    start = time.perf_counter()
    if runtime.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    model.reset_parameters(gen)
    model.to(runtime.device)
    run = _prepare(model, data, query, cfg, runtime.device)
    stop_cfg = {k: cfg[k] for k in STOPPING_DEFAULTS if k in cfg}
    vdata = validation_sample(data, int(cfg["valid_users"]), valid_seed)
    stopper = EarlyStopping(vdata, stop_cfg, runtime)
    adapter = Adapter(data.train, data.n_users, data.n_items, cfg, run.dev) if stopper.evaluator is not None else None
    block, n_epochs = int(cfg["score_block"]), int(cfg["meta_epochs"])

    def score_fn(users):
        return blocked_scores(adapter, model, users, shard_key, block)

    epoch_s = []
    bar = tqdm(
        range(1, n_epochs + 1), desc=f"eemu shard {shard}", leave=False, disable=None if runtime.progress else True
    )
    for epoch in bar:
        t0 = clock()
        _meta_epoch(run, gen)
        epoch_s.append(clock() - t0)
        if _select(stopper, epoch, score_fn, model, bar, shard, n_epochs, t0):
            break
    bar.close()
    return _finish(model, runtime, stopper, start, epoch_s, run.meta_users)


def _prepare(model, data: TrainSet, query: np.ndarray, cfg: dict, dev) -> _MetaRun:
    """The shard's support and query rows by user, its negative sampler, the parameters and the
    outer Adam of `model` (already on `dev`)."""
    train = data.train
    row_users = train.users
    allrows = np.arange(len(train))
    support = rows_by_user(row_users, allrows[~query], data.n_users)
    queries = rows_by_user(row_users, allrows[query], data.n_users)
    meta_users = np.flatnonzero(queries.counts.numpy() > 0)
    users_t = torch.as_tensor(row_users, device=dev)
    items_t = torch.as_tensor(train.items, device=dev)
    sampler = NegativeSampler(users_t, items_t, data.n_items)
    params, buffers = split_tensors(model)
    opt = torch.optim.Adam(list(params.values()), lr=float(cfg["lr"]))
    return _MetaRun(
        model=model,
        params=params,
        buffers=buffers,
        opt=opt,
        sampler=sampler,
        support=support,
        queries=queries,
        meta_users=meta_users,
        users_t=users_t,
        items_t=items_t,
        dev=dev,
        inner_lr=float(cfg["inner_lr"]),
        bsz=int(cfg["meta_batch"]),
        sequential=cfg["meta_update"] == "sequential",
        outer=str(cfg["outer"]),
        in_batch=bool(cfg["in_batch_negative"]),
    )


def _meta_epoch(run: _MetaRun, gen: torch.Generator) -> None:
    """One meta-epoch: the meta-users shuffled, one negative for every row, then the meta-batches."""
    perm = torch.randperm(len(run.meta_users), generator=gen).numpy()
    neg_t = run.sampler.sample(run.users_t, gen)
    for s in range(0, len(perm), run.bsz):
        args = _batch_args(run, run.meta_users[perm[s : s + run.bsz]], neg_t, gen)
        _meta_step(run, args)


def _batch_args(run: _MetaRun, batch: np.ndarray, neg_t: torch.Tensor, gen: torch.Generator) -> tuple:
    """(users, support positives, negatives and mask, query positives, negatives and mask) of a
    meta-batch, padded per user; with `in_batch`, a second negative per row (the last axis)."""
    dev, items_t = run.dev, run.items_t
    srow, smask = run.support.padded(batch)
    qrow, qmask = run.queries.padded(batch)
    srow_t, qrow_t = torch.as_tensor(srow, device=dev), torch.as_tensor(qrow, device=dev)
    s_neg, q_neg = neg_t[srow_t], neg_t[qrow_t]
    if run.in_batch:  # a second negative per row, from the other users' rows of this batch
        pool = torch.as_tensor(np.concatenate([srow[smask], qrow[qmask]]), device=dev)
        batch_t = torch.as_tensor(batch, device=dev)
        s_neg, q_neg = (
            torch.stack([n, in_batch_negatives(run.sampler, batch_t[:, None].expand_as(n), items_t[pool], n, gen)], -1)
            for n in (s_neg, q_neg)
        )
    return (
        torch.as_tensor(batch, device=dev),
        items_t[srow_t],
        s_neg,
        torch.as_tensor(smask, device=dev, dtype=torch.float32),
        items_t[qrow_t],
        q_neg,
        torch.as_tensor(qmask, device=dev, dtype=torch.float32),
    )


def _meta_step(run: _MetaRun, args: tuple) -> None:
    """One meta-batch's update: `sequential` (the released per-user loop) or `batched`."""
    if run.sequential:
        _sequential_batch(run.model, run.params, run.buffers, run.opt, run.outer, args)
        return
    g = batched_meta_grad(
        run.model, {k: v.detach() for k, v in run.params.items()}, run.buffers, run.inner_lr, run.outer, *args
    )
    for k, p in run.params.items():
        p.grad = g[k]
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)


def _select(stopper: EarlyStopping, epoch: int, score_fn, model, bar, shard: int, n_epochs: int, t0) -> bool:
    """The epoch's model selection (`stopper.step`) and its log line; whether to stop."""
    evaluated = len(stopper.curve)
    stop = stopper.step(epoch, score_fn, model)
    value = stopper.curve[-1][1] if len(stopper.curve) > evaluated else None
    if value is not None:
        shown = f"valid {stopper.metric} {value:.4f} (best {stopper.best:.4f} at epoch {stopper.best_epoch})"
        bar.set_postfix({stopper.metric: f"{value:.4f}"})
    else:
        shown = "no validation" if stopper.evaluator is None else "valid not due"
    log.info("eemu shard %d, meta-epoch %d/%d: %s, %.2f s", shard, epoch, n_epochs, shown, (clock() - t0).wall)
    return stop


def _finish(model, runtime, stopper: EarlyStopping, start: float, epoch_s: list, meta_users: np.ndarray):
    """The selected weights restored, the model frozen for scoring, and the training report."""
    stopper.restore(model)
    model.zero_grad(set_to_none=True)
    model.eval()
    runtime.sync()
    report = stopper.report(start)
    report.extra["epoch_s"] = float(np.mean([e.wall for e in epoch_s])) if epoch_s else 0.0
    report.extra["epoch_cpu_s"] = float(np.mean([e.cpu for e in epoch_s])) if epoch_s else 0.0
    report.extra["meta_users"] = int(len(meta_users))
    return report
