"""RecEraser's attention-based adaptive aggregation (Chen et al., WWW 2022, Sec. 3.3): `aggregator=attention`.

The aggregator combines the K frozen shard models' user and item embeddings through a trained
attention network (`attention_net.AttentionNet`: per-shard affine transfers, attention over the
K transferred vectors, score e_u . e_i). This module binds the shards and runs the fit; what an
epoch steps over is in `schedules.py`, how `auto` settings resolve in `attention_settings.py`.

It is trained on all retained train rows with the sub-model's loss family: BPR with negatives
rejected against the retained rows (sub-models `bpr`, `lightgcn`), the whole-data WMF loss
(`wmf`), plus `reg` * L2 of the transfer parameters. Every shard model is frozen: their embeddings
are stacked once per fit (K x n x d) under `no_grad` and detached, and the fit checks that no
gradient reached a shard parameter. Early stopping on validation recall@10 (never test), own RNG
stream. At a validation plateau (`patience` epochs without improvement) the fit returns to its
best state and halves the learning rate, `lr_halvings` times, before it stops. Patience 2 and two
halvings (entity schedule) because patience 1 with one halving fits faster but ends measurably
lower on ML-1M with both BPR and WMF shards.
"""

from __future__ import annotations

import logging
import time

import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..registry import AGGREGATORS
from ..training import (
    STOPPING_DEFAULTS,
    EarlyStopping,
    NegativeSampler,
    TrainingTriples,
    UserRows,
    make_optimizer,
)
from .attention_net import AttentionNet
from .attention_settings import block_sizes, lr_halvings, optimizer_settings, transfer_init, transfer_reg
from .base import Aggregator
from .schedules import BatchSchedule, EntitySchedule

log = logging.getLogger(__name__)

TRAINABLE_LOSSES = ("bpr", "wmf")  # the loss families this aggregator can train with
ABSENT_USERS = ("transferred", "untransferred")  # how a user without retained rows is represented


def shard_state(shards: list) -> list:
    """Version counters of every shard parameter and of its gradient: any in-place update or a
    new gradient changes them."""
    out = []
    for m in shards:
        for p in m.parameters():
            g = p.grad
            out.append((id(p), p._version, p.requires_grad, None if g is None else (id(g), g._version)))
    return out


@AGGREGATORS.register("attention")
class Attention(Aggregator):
    trainable = True
    defaults = {
        "hidden": 32,
        "transfer": "shared",  # shared (released) | separate
        # auto (the released file of the loss family: glorot for bpr, normal for wmf) | glorot | normal | identity
        "transfer_init": "auto",
        "loss": "auto",  # auto (the sub-model's family) | bpr | wmf
        "reg": "auto",  # auto (released: 1e-5 for bpr, 0 for wmf) | a number
        # auto: ENTITY_OPTIMIZER on the entity schedule, the sub-model's on batch | null: the sub-model's | a name
        "optimizer": "auto",
        "lr": "auto",
        "adagrad_init": None,
        "batch_size": None,
        "dropout": None,
        "c0": None,
        # entity (each step a block of distinct users x items, each combined once) | batch (released)
        "schedule": "entity",
        "entity_batch": "auto",  # users per step with schedule=entity (auto: 1/USER_BLOCKS of the users)
        "item_batch": "auto",  # items per step with schedule=entity (auto: 1/ITEM_BLOCKS of the items; null: all)
        **STOPPING_DEFAULTS,
        "epochs": 400,  # a cap (the previous entity schedule's WMF loss took 130-183 epochs on ML-1M)
        "patience": 2,  # epochs (USER_BLOCKS x ITEM_BLOCKS steps each) after the last improvement
        # plateaus answered by halving the lr before stopping (auto: LR_HALVINGS on entity, 0 on batch)
        "lr_halvings": "auto",
        "min_epochs": 0,
        "absent_users": "transferred",  # transferred (released) | untransferred (see `representation`)
    }

    def __init__(self, cfg=None, n_users=0, n_items=0, runtime=None):
        from ..runtime import CPU

        super().__init__(cfg, n_users, n_items, runtime or CPU)
        for key, valid in (
            ("transfer", ("shared", "separate")),
            ("transfer_init", ("auto", "glorot", "normal", "identity")),
            ("loss", ("auto", *TRAINABLE_LOSSES)),
            ("absent_users", ABSENT_USERS),
        ):
            if self.cfg[key] not in valid:
                raise ConfigError(f"Unknown aggregator.{key} '{self.cfg[key]}'. Valid: {', '.join(valid)}.")
        self.net: AttentionNet | None = None
        self._items_cache = None
        self._absent = None  # users without a retained train row (set by fit)

    # -- setup -------------------------------------------------------------------------
    def bind(self, shards, partition):
        super().bind(shards, partition)
        dev = self.runtime.device
        with torch.no_grad():
            embs = [m.embeddings() for m in shards]
            self._users = torch.stack([u.detach().to(dev, torch.float32) for u, _ in embs])  # K x n_users x d
            self._items = torch.stack([i.detach().to(dev, torch.float32) for _, i in embs])  # K x n_items x d
        k, _, d = self._users.shape
        self.net = AttentionNet(k, d, int(self.cfg["hidden"]), self.cfg["transfer"] == "separate").to(dev)
        self._items_cache = None
        self._sub_cfg = dict(shards[0].cfg)
        self._sub_family = getattr(shards[0], "loss_family", None)
        self._sub_name = getattr(shards[0], "registered_name", "")

    def _setting(self, key, fallback):
        value = self.cfg.get(key)
        if value is None:
            value = self._sub_cfg.get(key, fallback)
        return value

    def _loss_family(self) -> str:
        """The sub-model's declared loss family (`SubModel.loss_family`) unless set explicitly."""
        if self.cfg["loss"] != "auto":
            return self.cfg["loss"]
        if self._sub_family not in TRAINABLE_LOSSES:
            raise ConfigError(
                f"aggregator=attention trains with its sub-model's loss family and knows "
                f"{', '.join(TRAINABLE_LOSSES)}; submodel={self._sub_name} declares '{self._sub_family}'. "
                f"Set aggregator.loss=bpr or aggregator.loss=wmf."
            )
        return self._sub_family

    # -- scoring -----------------------------------------------------------------------
    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        raw = self._users[:, users]
        out = self.net.combine(raw, item=False)
        if self.cfg["absent_users"] == "untransferred" and self._absent is not None:
            absent = self._absent.to(users.device)[users]
            out = torch.where(absent[:, None], raw.mean(0), out)
        return out

    def representation(self, shards, users):
        """ "": the vector that scores; ".untransferred": the plain mean of the shard vectors.

        A user with no retained row (a deleted user) keeps its initial vector in every shard that
        was retrained without it. With `absent_users: transferred` (the released code) it is
        scored like everyone, by attention over the transferred vectors W_k e + b_k, and the
        transfer biases b_k, shared by all such users, dominate: they collapse onto one direction
        (one ranking, close to popularity). `absent_users: untransferred` scores them with the plain
        mean of their shard vectors, which no transfer moves, as independent of each other as the
        retrain oracle's never-trained vectors. Users with rows are scored alike either way."""
        with torch.no_grad():
            u = users.to(self._users.device)
            return {"": self.user_vectors(u), ".untransferred": self._users[:, u].mean(0)}

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        e = self._items if items is None else self._items[:, items]
        return self.net.combine(e, item=True)

    def _all_items(self) -> torch.Tensor:
        if self._items_cache is None:
            with torch.no_grad():
                self._items_cache = self.item_vectors()
        return self._items_cache

    def score(self, shards, users):
        with torch.no_grad():
            return self.user_vectors(users) @ self._all_items().T

    # -- training ----------------------------------------------------------------------
    def fit(self, shards, partition, data: TrainSet, seed: int) -> dict:
        start = time.perf_counter()
        before = shard_state(shards)
        self.bind(shards, partition)
        dev = self.runtime.device
        self._absent = torch.as_tensor(data.train.user_counts(data.n_users) == 0, device=dev)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        family = self._loss_family()
        self.net.reset_parameters(gen, transfer_init(self.cfg, family))
        reg = transfer_reg(self.cfg, family)
        self.resolved = {
            **optimizer_settings(self.cfg, self._sub_cfg, family),
            **block_sizes(self.cfg, data, self.n_items),
            "lr_halvings": lr_halvings(self.cfg),
            "epochs": self._epoch_cap(),
        }
        opt = make_optimizer(self.net.parameters(), self.resolved)
        hp = {"p_drop": float(self._setting("dropout", 0.0)), "reg": reg, "c0": float(self._setting("c0", 0.2))}
        steps = self._schedule(data, family, hp)
        stopper = EarlyStopping(data, self.cfg, self.runtime)
        self._train(shards, steps, opt, stopper, gen)
        stopper.restore(self.net)
        self.net.eval()
        self._items_cache = None
        if shard_state(shards) != before:  # stop-gradient: no shard parameter or gradient moved
            raise RuntimeError("aggregator=attention: a shard's parameters or gradients changed while fitting it")
        self.runtime.sync()
        return {
            **stopper.report(start).as_dict(),
            "settings": dict(self.resolved),
            "lr_final": opt.param_groups[0]["lr"],
            "epoch_cap": self.resolved["epochs"],
        }

    def _schedule(self, data: TrainSet, family: str, hp: dict):
        """The configured schedule over the retained train rows: a callable yielding an epoch's losses."""
        dev = self.runtime.device
        rows = UserRows(data.train.users, data.train.items, data.n_users, data.n_items, dev)
        if self.cfg["schedule"] == "entity":
            sampler = NegativeSampler(
                torch.as_tensor(data.train.users, device=dev),
                torch.as_tensor(data.train.items, device=dev),
                self.n_items,
            )
            return self._entity_steps(
                rows, sampler, family, self.resolved["entity_batch"], self.resolved["item_batch"], hp
            )
        bs = int(self._setting("batch_size", 1024))
        triples = TrainingTriples(data.train.users, data.train.items, self.n_items, dev) if family == "bpr" else None
        return self._batch_steps(rows, triples, family, bs, hp)

    def _train(self, shards, steps, opt, stopper: EarlyStopping, gen: torch.Generator) -> None:
        """Epochs of `steps` until the epoch cap or early stopping; at a validation plateau the fit
        returns to its best state and halves the learning rate, `lr_halvings` times, before it stops."""
        halvings_left = self.resolved["lr_halvings"]
        for epoch in range(1, self.resolved["epochs"] + 1):
            self.net.train()
            self._items_cache = None
            for loss in steps(gen):
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            self.net.eval()
            self._items_cache = None
            if stopper.step(epoch, lambda us: self.score(shards, us), self.net):
                if halvings_left == 0:
                    break
                halvings_left -= 1  # a plateau: back to the best state, half the step, patience anew
                stopper.restore(self.net)
                for group in opt.param_groups:
                    group["lr"] *= 0.5
                stopper.resume(epoch)

    def _epoch_cap(self) -> int:
        """The aggregator's epoch cap, lowered to the sub-model's: a user who caps the shards'
        epochs (a quick run) caps the aggregator's training too."""
        own, shards = int(self.cfg["epochs"]), self._sub_cfg.get("epochs")
        if shards is None or int(shards) >= own:
            return own
        log.debug("aggregator=attention: epoch cap %d lowered to the sub-model's %d", own, int(shards))
        return int(shards)

    def _entity_steps(
        self, rows: UserRows, sampler: NegativeSampler, family: str, batch: int, item_batch: int | None, hp: dict
    ) -> EntitySchedule:
        """schedule=entity: blocks of `batch` distinct users x `item_batch` distinct items (null: all
        items) over the bound shards' frozen vectors (see `schedules.EntitySchedule`)."""
        return EntitySchedule(
            self.net,
            self._users,
            self._items,
            rows,
            sampler,
            family,
            batch,
            item_batch,
            hp,
            self.n_items,
            self.runtime.device,
        )

    def _batch_steps(self, rows: UserRows, triples, family: str, bs: int, hp: dict) -> BatchSchedule:
        """schedule=batch, the released one (see `schedules.BatchSchedule`)."""
        return BatchSchedule(self.net, self.user_vectors, self.item_vectors, rows, triples, family, bs, hp)

    # -- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {} if self.net is None else {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        if self.net is None:
            raise RuntimeError("aggregator=attention: bind(shards, partition) before load_state_dict")
        self.net.load_state_dict({k: v.to(self.runtime.device) for k, v in state.items()})
        self.net.eval()
        self._items_cache = None
