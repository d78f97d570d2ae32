"""Sub-models: torch modules that score (users x all items), trained on one shard.

A sub-model reads only its `TrainSet` (the shard's rows, the validation rows of the shard's
users, the id universe) and draws every random number from its own generator, seeded by the
caller from (seed, component, shard id). Fitting the same TrainSet with the same seed gives
bit-identical parameters on CPU.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from functools import partial
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..fit_report import FitReport
from ..runtime import CPU, Runtime
from ..training import STOPPING_DEFAULTS, EarlyStopping, TrainingTriples, make_optimizer
from .analytic import DotProductGrads


class SubModel(torch.nn.Module, ABC):
    """Base class. Subclasses set `defaults` and implement `fit` and `score`."""

    registered_name = "submodel"
    defaults: dict = {}
    loss_family: str | None = None  # one of training.LOSS_FAMILIES: what an aggregator trains with

    def __init__(self, n_users: int, n_items: int, cfg: dict | None = None, runtime: Runtime = CPU):
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.cfg = {**self.defaults, **{k: v for k, v in (cfg or {}).items() if k != "name"}}
        self.runtime = runtime
        self.device = runtime.device

    @abstractmethod
    def fit(self, data: TrainSet, seed: int) -> FitReport:
        """Train on `data` from `seed`; returns the fit's report."""

    @abstractmethod
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` over every item."""

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user x d, item x d) representations, for aggregators and partition pretraining."""
        raise NotImplementedError(f"{self.registered_name} has no embeddings")


class EpochTrainedModel(SubModel):
    """Mini-batch training with model selection on a validation metric (never the test set), or
    a fixed budget of epochs (`selection: last`); see `training.EarlyStopping`.

    Subclasses implement `reset_parameters(gen)`, `prepare(data)`, `batches(gen)` yielding
    batch tuples and `loss(batch)`. The best epoch's parameters are kept.
    """

    defaults = {
        **STOPPING_DEFAULTS,
        "epochs": 200,  # a cap: early stopping (or selection=last's fixed budget) ends training
        "optimizer": "adam",
        "lr": 1e-3,
        "adagrad_init": 0.1,  # Adagrad's initial accumulator (torch's default), used with optimizer=adagrad
        "batch_size": 1024,
    }

    @abstractmethod
    def reset_parameters(self, gen: torch.Generator) -> None:
        """Draw the initial parameters from `gen`."""

    @abstractmethod
    def prepare(self, data: TrainSet) -> None:
        """Build what the batches read from `data`."""

    @abstractmethod
    def batches(self, gen: torch.Generator) -> Iterator[tuple]:
        """One epoch's batches."""

    @abstractmethod
    def loss(self, batch: tuple) -> torch.Tensor:
        """The training loss of one batch."""

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def begin_fit(self, data: TrainSet, seed: int) -> torch.optim.Optimizer:
        """Set up a fit on `data` from `seed` (parameters drawn, rows prepared) and return its
        optimiser; `train_epoch(opt)` then runs one epoch. `fit` is these two plus early stopping;
        benchmarks call them to time epochs."""
        if self.runtime.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        self._gen = gen  # the only RNG training may draw from (negatives, dropout, shuffles)
        self.reset_parameters(gen)
        self.to(self.device)
        self.prepare(data)
        return make_optimizer(self.trainable_parameters(), self.cfg)

    def train_epoch(self, opt: torch.optim.Optimizer) -> None:
        """One pass over the prepared rows' batches."""
        self.train()
        for batch in self.batches(self._gen):
            opt.zero_grad(set_to_none=True)
            self.loss(batch).backward()
            opt.step()
        self.eval()

    def fit(self, data: TrainSet, seed: int) -> FitReport:
        start = time.perf_counter()
        opt = self.begin_fit(data, seed)
        cfg = self.cfg
        stopper = EarlyStopping(data, cfg, self.runtime)
        bar = tqdm(
            range(1, int(cfg["epochs"]) + 1),
            desc=self.registered_name,
            leave=False,
            disable=None if self.runtime.progress else True,
        )
        for epoch in bar:
            self.train_epoch(opt)
            stop = stopper.step(epoch, self.score, self)
            if stopper.best_epoch == epoch:
                bar.set_postfix({stopper.metric: f"{stopper.best:.4f}"})
            if stop:
                break
        stopper.restore(self)
        self.zero_grad(set_to_none=True)  # a trained shard keeps no gradient buffers
        self.finish()
        self.eval()
        self.runtime.sync()
        return stopper.report(start)

    def finish(self) -> None:
        """Hook after training (e.g. free per-shard caches)."""


class MatrixFactorization(EpochTrainedModel):
    """User and item embedding tables, drawn N(0, init_std^2) from the fit's generator; scores are
    dot products. `prepare` / `batches` give (user, positive, sampled negative) triples of the
    shard's rows, shuffled each epoch: what pairwise and pointwise losses train on.

    A subclass whose loss reads the batch through dot products only writes `score_slots` and
    `score_grad` and declares `grad` in its defaults: `analytic` steps with the closed-form
    gradient (`analytic.DotProductGrads`), `autograd` back-propagates `loss(batch)`. The two give
    the same gradients to float rounding, so the same fit to rounding (not bit for bit); each is
    a deterministic function of the seed and data. Without `grad`, autograd."""

    defaults = {**EpochTrainedModel.defaults, "dim": 64, "init_std": 0.01, "dropout": 0.0}
    GRADS = ("analytic", "autograd")

    def __init__(self, n_users: int, n_items: int, cfg: dict | None = None, runtime: Runtime = CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        if self.cfg.get("grad", "autograd") not in self.GRADS:
            raise ConfigError(f"Unknown submodel.grad '{self.cfg['grad']}'. Valid: {', '.join(self.GRADS)}.")
        d = int(self.cfg["dim"])
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, d))
        self._grads: DotProductGrads | None = None

    # A loss that reads a batch only through scores user . item (plus the usual L2 term) may say
    # so: `score_slots(batch)` -> (users (B,), items (B, K)) and `score_grad(batch, scores)` ->
    # dL/dscores (B, K). Then `grad: analytic` trains without autograd.
    score_slots = None
    score_grad = None
    # "bpr": `score_grad` is BPR's over (positive, negative) triples, which a CPU Adagrad fit runs a
    # whole epoch of in compiled loops (`DotProductGrads.bpr_adagrad_epoch`)
    compiled_epoch: str | None = None

    @property
    def analytic(self) -> bool:
        return self.cfg.get("grad") == "analytic" and self.score_slots is not None

    def train_epoch(self, opt: torch.optim.Optimizer) -> None:
        if not self.analytic:
            return super().train_epoch(opt)
        if self._grads is None:
            self._grads = DotProductGrads(self.user_emb, self.item_emb)
        self.train()
        reg = float(self.cfg.get("reg", 0.0))
        if self.compiled_epoch == "bpr" and self._grads.adagrad_epoch_ready(opt):
            users, pos, neg = self._triples.draw(self._gen)
            self._grads.bpr_adagrad_epoch(
                opt,
                users,
                torch.stack([pos, neg], 1),
                reg,
                int(self.cfg["batch_size"]),
                self._dropout_uniforms,
                float(self.cfg["dropout"]),
            )
            self.eval()
            return
        for batch in self.batches(self._gen):
            users, items = self.score_slots(batch)
            keep = self.dropout_keep(len(users))
            self._grads.fill(users, items, partial(self.score_grad, batch), reg, keep, float(self.cfg["dropout"]))
            self._grads.step(opt)
        self.eval()

    def reset_parameters(self, gen):
        std = float(self.cfg["init_std"])
        with torch.no_grad():
            self.user_emb.copy_(torch.randn(self.user_emb.shape, generator=gen) * std)
            self.item_emb.copy_(torch.randn(self.item_emb.shape, generator=gen) * std)

    def prepare(self, data: TrainSet):
        self._triples = TrainingTriples(data.train.users, data.train.items, self.n_items, self.device)
        self._u, self._i, self._sampler = self._triples.users, self._triples.items, self._triples.sampler

    def batches(self, gen):
        return self._triples.epoch(gen, int(self.cfg["batch_size"]))

    def _dropout_draws(self, n: int) -> torch.Tensor | None:
        """The next n user vectors' dropout uniforms (n, d) from the fit's generator (an entry is
        kept where its draw >= `dropout`), or None when nothing is dropped."""
        p = float(self.cfg["dropout"])
        if not (self.training and p > 0):
            return None
        return torch.rand((n, self.user_emb.shape[1]), generator=self._gen)

    def dropout_keep(self, n: int) -> torch.Tensor | None:
        """The training dropout mask of n user vectors (`dropout` = p = 1 - keep probability),
        drawn from the fit's generator, or None when nothing is dropped; kept entries are scaled
        by 1 / (1 - p) (`user_vectors`)."""
        draws = self._dropout_draws(n)
        return None if draws is None else (draws >= float(self.cfg["dropout"])).to(self.user_emb.device)

    def _dropout_uniforms(self, n: int) -> np.ndarray:
        """`_dropout_draws` as the compiled epoch reads them: (n, d), or (0, 0) when nothing is dropped."""
        draws = self._dropout_draws(n)
        return np.zeros((0, 0), np.float32) if draws is None else draws.numpy()

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """Batch user vectors, with dropout while training."""
        u = self.user_emb.index_select(0, users)
        keep = self.dropout_keep(len(users))
        return u if keep is None else u * keep / (1.0 - float(self.cfg["dropout"]))

    def score(self, users):
        return self.user_emb[users] @ self.item_emb.T

    def embeddings(self):
        return self.user_emb.detach(), self.item_emb.detach()

    def finish(self):
        self._triples = self._u = self._i = self._sampler = None
        self._grads = None
