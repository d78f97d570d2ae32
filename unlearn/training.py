"""The training room: what every trained component (sub-models, the attention aggregator, the
UltraRE combiner) shares, and nothing model-specific.

- `make_optimizer`: optimisers by name;
- `EarlyStopping`: model selection on validation (never test), or a fixed budget (`selection: last`);
- `NegativeSampler`, `TrainingTriples`, `block_negatives`: sampled negatives rejected against the
  component's own positives, shuffled (user, positive, negative) epochs, negatives inside a block;
- `UserRows`, `wmf_whole_data_loss`: user mini-batches of a component's rows and the whole-data
  (non-sampling) weighted squared loss;
- `pair_scores`: p[r] . q[c] for many pairs, through one dense block product where the pairs fill it;
- `LOSS_FAMILIES`: the loss families a sub-model may declare (`SubModel.loss_family`), so an
  aggregator can train with its shards' loss without knowing their names.

Every random number comes from the caller's generator (one stream per seed, component, shard).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from .data.csr import CSR
from .data.interactions import Interactions, TrainSet
from .errors import ConfigError
from .fit_report import FitReport
from .metrics.ranking import RankingEvaluator
from .runtime import Runtime

LOSS_FAMILIES = ("bpr", "wmf", "bce", "mse", "als", "margin")


OPTIMIZERS = {
    "adam": lambda params, cfg, **kw: torch.optim.Adam(params, lr=float(cfg["lr"]), **kw),
    "adagrad": lambda params, cfg, **kw: torch.optim.Adagrad(
        params, lr=float(cfg["lr"]), initial_accumulator_value=float(cfg["adagrad_init"]), **kw
    ),
    "sgd": lambda params, cfg, **kw: torch.optim.SGD(params, lr=float(cfg["lr"]), **kw),
}


def make_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    """The configured optimiser, with torch's fused kernel where the device has one (CPU and CUDA):
    one pass over each parameter per step instead of a kernel per operation (a BPR epoch on ML-1M
    about 1.4x faster on one CPU thread). Fused steps are deterministic but round differently
    from the per-operation ones (Adam: ~5e-7 after 20 steps)."""
    name = cfg.get("optimizer", "adam")
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer '{name}'. Valid: {', '.join(OPTIMIZERS)}.")
    params = list(params)
    try:
        return OPTIMIZERS[name](params, cfg, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
        return OPTIMIZERS[name](params, cfg)


SELECTIONS = ("best_valid", "last")
# what every early-stopped component (sub-models, the attention aggregator, EEMU's meta-training)
# starts from: the headline metric family (NDCG@20), patience in epochs after the last improvement
# by more than min_delta, never stopping before min_epochs
STOPPING_DEFAULTS = {
    "selection": "best_valid",
    "early_stop_metric": "ndcg@20",
    "eval_every": 1,
    "patience": 20,
    "min_epochs": 10,
    "min_delta": 0.0,
}
STOP_REASONS = ("patience", "epoch_cap", "no_validation", "fixed_budget")


class EarlyStopping:
    """Model selection on validation (never test).

    `selection: best_valid` (default): every `eval_every` epochs the validation `early_stop_metric`
    is computed; the best evaluation's parameters are kept and restored, and training stops once
    `patience` epochs have passed since the last improvement of more than `min_delta`, but never
    before `min_epochs`. `selection: last`: a fixed budget of `epochs`, the final epoch's
    parameters, no validation read (for protocols without a validation set). With no validation
    rows (or patience 0) every epoch runs and the last one is kept.

    `report` says where the fit stopped and why (`stop_reason`: patience | epoch_cap |
    no_validation | fixed_budget)."""

    def __init__(self, data: TrainSet, cfg: dict, runtime: Runtime):
        self.selection = str(cfg.get("selection", "best_valid"))
        if self.selection not in SELECTIONS:
            raise ConfigError(f"Unknown selection '{self.selection}'. Valid: {', '.join(SELECTIONS)}.")
        self.metric = cfg["early_stop_metric"]
        self.patience = int(cfg["patience"])
        self.every = int(cfg["eval_every"])
        self.min_epochs = int(cfg.get("min_epochs", 0))
        self.min_delta = float(cfg.get("min_delta", 0.0))
        if self.every < 1 or self.patience < 0 or self.min_epochs < 0 or self.min_delta < 0:
            raise ConfigError(
                f"early stopping needs eval_every >= 1 and patience, min_epochs, min_delta >= 0; "
                f"got eval_every={self.every}, patience={self.patience}, "
                f"min_epochs={self.min_epochs}, min_delta={self.min_delta}."
            )
        self.evaluator = None
        if self.selection == "best_valid" and len(data.valid) and self.patience > 0:
            self.evaluator = RankingEvaluator(
                data.n_users,
                data.n_items,
                data.train,
                data.valid,
                ks=(int(self.metric.split("@")[1]),),
                device=runtime.device,
                batch_size=runtime.eval_batch,
            )
        self.best, self.best_epoch, self.best_state, self.epochs = -np.inf, 0, None, 0
        self.anchor, self.anchor_epoch = -np.inf, 0  # the last improvement by more than min_delta
        self.curve: list[tuple[int, float]] = []  # (epoch, validation metric) of every evaluation
        self.stopped = False  # patience ran out (False: the epoch cap, or nothing to validate on, ended training)

    def step(self, epoch: int, score_fn, module: torch.nn.Module) -> bool:
        """After an epoch: evaluate if due, keep the best state; True when training should stop."""
        self.epochs = epoch
        if self.evaluator is None or epoch % self.every:
            return False
        value = float(self.evaluator.evaluate(score_fn, groups=False)[self.metric])
        self.curve.append((epoch, value))
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            self.best_state = copy.deepcopy(module.state_dict())
        if value > self.anchor + self.min_delta:
            self.anchor, self.anchor_epoch = value, epoch
        self.stopped = epoch >= self.min_epochs and epoch - self.anchor_epoch >= self.patience
        return self.stopped

    def resume(self, epoch: int) -> None:
        """Training goes on after patience ran out (say at a lower learning rate): patience
        counts again from `epoch`."""
        self.stopped = False
        self.anchor_epoch = epoch

    def restore(self, module: torch.nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def stop_reason(self) -> str:
        if self.selection == "last":
            return "fixed_budget"
        if self.evaluator is None:
            return "no_validation"
        return "patience" if self.stopped else "epoch_cap"

    def report(self, start: float) -> FitReport:
        return FitReport(
            epochs=self.epochs,
            best_epoch=self.best_epoch or self.epochs,
            valid=float(self.best) if self.best_state is not None else float("nan"),
            valid_curve=[list(c) for c in self.curve],
            stopped_early=self.stopped,
            stop_reason=self.stop_reason(),
            selection=self.selection,
            seconds=time.perf_counter() - start,
        )


class NegativeSampler:
    """Uniform negatives rejected against the user's positives *in this shard* only."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_items: int, max_rounds: int = 100):
        self.n_items = n_items
        self.keys = torch.sort(users * n_items + items).values
        self.max_rounds = max_rounds

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.n_items + items
        if len(self.keys) == 0:
            return torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
        # queries sorted first: the binary searches then walk the keys in order (4x faster on
        # ML-1M's 717k rows than searching in shuffled order)
        ordered, order = torch.sort(keys)
        pos = torch.searchsorted(self.keys, ordered).clamp(max=len(self.keys) - 1)
        hit = torch.empty(len(keys), dtype=torch.bool, device=keys.device)
        hit[order] = self.keys[pos] == ordered
        return hit

    def sample(self, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One negative per entry of `users`, uniform over the items, rejected against the
        positives (`redraw_positives`)."""

        def draw(size):
            return torch.randint(0, self.n_items, (size,), generator=gen).to(users.device)

        return redraw_positives(
            draw(len(users)), lambda idx, neg: self.is_positive(users[idx], neg), draw, self.max_rounds
        )


def redraw_positives(neg: torch.Tensor, hits, draw, max_rounds: int) -> torch.Tensor:
    """Rejection sampling shared by the samplers: `hits(idx, neg[idx])` marks the draws that hit a
    positive, and only those are redrawn with `draw(n)` and checked again (the others stay valid),
    in ascending order, so the draws are those of re-checking everything each round. After
    `max_rounds` a draw may remain on a positive (a user holding nearly every candidate)."""
    bad = torch.arange(len(neg), device=neg.device)
    for _ in range(max_rounds):
        bad = bad[hits(bad, neg[bad])]
        if len(bad) == 0:
            break
        neg[bad] = draw(len(bad))
    return neg


def block_negatives(
    positive: torch.Tensor, rows: torch.Tensor, gen: torch.Generator, max_rounds: int = 100
) -> torch.Tensor:
    """One negative column per entry of `rows` inside a (rows x columns) block whose positives
    `positive` marks (a user block against an item block): uniform over the block's columns,
    rejected as NegativeSampler does, looked up in the block instead of the sorted keys."""

    def draw(size):
        return torch.randint(0, positive.shape[1], (size,), generator=gen).to(rows.device)

    return redraw_positives(draw(len(rows)), lambda idx, neg: positive[rows[idx], neg], draw, max_rounds)


class TrainingTriples:
    """(user, positive, negative) triples of a set of rows: shuffled and freshly sampled each
    epoch from the caller's generator, negatives rejected against these rows' positives."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, device):
        self.users = torch.as_tensor(users, device=device)
        self.items = torch.as_tensor(items, device=device)
        self.sampler = NegativeSampler(self.users, self.items, n_items)

    def draw(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's (users, positives, negatives), shuffled, as `epoch` batches them."""
        perm = torch.randperm(len(self.users), generator=gen).to(self.users.device)
        users, pos = self.users[perm], self.items[perm]
        return users, pos, self.sampler.sample(users, gen)

    def epoch(self, gen: torch.Generator, batch_size: int):
        n = len(self.users)
        users, pos, neg = self.draw(gen)
        for s in range(0, n, batch_size):
            yield users[s : s + batch_size], pos[s : s + batch_size], neg[s : s + batch_size]


DENSE_PAIR_DENSITY = 1 / 128  # pairs per cell of len(p) x len(q) from which the dense block is cheaper
DENSE_PAIR_CELLS = 1 << 25  # at most this many cells (128 MiB of float32) are materialised


def pair_scores(p: torch.Tensor, q: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """p[rows] . q[cols] for every pair, differentiable in p and q.

    Gathering a d-vector per pair and scattering its gradient back costs about 1.5 us a pair on
    2 cores, the block product p @ q.T about 10 ns a cell (one matmul forward, two backward). So
    when the pairs fill at least DENSE_PAIR_DENSITY of the block (a user batch of ML-1M against
    all items: 4.5%), the block is computed and the pairs are read from it: 5x faster on ML-1M's
    270k pairs of 2048 users. Sparse blocks (Gowalla, Yelp2018) gather. The choice depends only on
    the shapes, so a fit stays a deterministic function of its seed and data."""
    cells = p.shape[0] * q.shape[0]
    if cells <= DENSE_PAIR_CELLS and len(rows) >= cells * DENSE_PAIR_DENSITY:
        return (p @ q.T).flatten().gather(0, rows * q.shape[0] + cols)
    return (p.index_select(0, rows) * q.index_select(0, cols)).sum(1)


def wmf_whole_data_loss(p: torch.Tensor, q_all: torch.Tensor, x_pos: torch.Tensor, c0: float) -> torch.Tensor:
    """Non-sampling weighted squared loss: observed-entry part plus the Gram-matrix all-pairs part."""
    observed = ((1.0 - c0) * x_pos.pow(2) - 2.0 * x_pos).sum()
    all_pairs = c0 * ((p.T @ p) * (q_all.T @ q_all)).sum()
    return observed + all_pairs


class UserRows(CSR):
    """A shard's rows grouped by user, for user mini-batches: `users` are those with rows and
    `gather(batch)` gives (position of the row's user within `batch`, row item) for their rows."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, device: torch.device):
        super().__init__(Interactions(users, items, np.ones(len(users))), n_users, n_items, device)
        self.users = torch.nonzero(self.counts).flatten()

    gather = CSR.positions

    def epoch(self, gen: torch.Generator, batch_size: int):
        """Shuffled user mini-batches: (users, position of each row's user in the batch, row item)."""
        perm = torch.randperm(len(self.users), generator=gen).to(self.users.device)
        for s in range(0, len(self.users), batch_size):
            batch = self.users[perm[s : s + batch_size]]
            local, items = self.gather(batch)
            yield batch, local, items
