"""RecEraser's attention-based adaptive aggregation (Chen et al., WWW 2022, Sec. 3.3).

For every shard k the frozen shard model gives user and item embeddings e^k (for LightGCN the
propagated ones). Each is mapped by a per-shard affine transfer t^k = W_k e^k + b_k (one W_k, b_k
per shard shared by users and items, as the released code's `trans_W`/`trans_B`; `transfer:
separate` gives users and items their own). A one-hidden-layer attention net, separate for
users and items, scores the K transferred vectors,

    a_k = h^T ReLU(W_A t^k + b_A),   alpha = softmax_k(a),   e = sum_k alpha_k t^k,

and the score is e_u . e_i. It is trained on all retained train rows with the sub-model's loss
family: BPR with negatives rejected against the retained rows (sub-models `bpr`, `lightgcn`),
the whole-data WMF loss (`wmf`). Every shard model is frozen: their embeddings are stacked once
per fit (K x n x d) under `no_grad` and detached, and the fit checks that no gradient reached a
shard parameter. Early stopping on validation recall@10 (never test), own RNG stream.

Optimiser, learning rate, Adagrad's initial accumulator, batch size, dropout on the aggregated user
vector and c0 default to the sub-model's values (`null` here), as the released code shares them between the local
models and
the aggregator; `optimizer: auto` / `lr: auto` (default) keep that for `schedule: batch` and give
the entity schedule an optimiser of its own (ENTITY_OPTIMIZER: Adam 0.005 for the BPR family, 0.01
for the WMF loss), whatever lr a tuned sub-model preset chose for its shards.
Regularisation: `reg` * L2 of the transfer parameters. `reg: auto` (default)
follows the released file that matches the sub-model: 1e-5 for the BPR family (RecEraser_BPR.py /
RecEraser_LightGCN.py; their BPR decay term is overwritten and therefore not applied) and 0 for
`wmf` (RecEraser_WMF.py applies no L2 to the transfer).

Schedule (ours to choose: exactness only needs the fit to be a deterministic function of its seed
and the retained rows). `schedule: entity` (default) steps over blocks of distinct users x items:
each epoch shuffles the users into `entity_batch` blocks and the items into `item_batch` blocks
(`auto`: 12 x 8 blocks, whatever the dataset's size), and one step takes one (user block, item
block) pair with every retained row inside it, combining each of its users and items once. A
step's cost is the K transfers of its users and items (the d x d maps dominate), so blocks keep it
small while every row is still visited once an epoch; the pairs' scores come from the dense block
product (`training.pair_scores`). BPR draws one negative per row inside the row's item block
(rejected against the user's retained rows); WMF takes the whole-data loss of the block, so an
epoch's blocks sum to the whole-data loss (tested). `schedule: batch` is the released one: BPR over
shuffled triples in batches of the sub-model's batch size, WMF over user batches, every item
combined at every step. At a validation plateau (`patience` epochs without improvement) the fit
returns to its best state and halves the learning rate, `lr_halvings` times, before it stops.

ML-1M (ml1m_cure4rec, UBP, K = 10, 2 threads; `benchmarks.perf.aggregator`), test NDCG@20 and
aggregator seconds, 3 seeds. BPR shards: the previous entity schedule (128 users against every
item, patience 10) 0.2904 +- 0.0011 in 39-44 s; the blocks 0.2890 +- 0.0008 in 15-19 s (a
shard: 5-7 s). WMF shards: the previous schedule with the sub-model's Adagrad 0.3330 +- 0.0027 in
174-385 s (130-183 epochs); the blocks with Adam 0.01 (`optimizer: auto`) 0.3346 +- 0.0027 in
16-32 s. `benchmarks.perf.aggregator` compares them.

Why patience 2 and two halvings (ML-1M, 3 seeds, one thread beside other jobs, 2026-12-05): patience 1
with one halving fits in 0.4-0.55x the time (bpr shards 13.0 -> 5.4 s, wmf 22.3 -> 12.4 s) but ends
lower, test NDCG@20 0.2873 +- 0.0007 against 0.2896 +- 0.0011 (bpr) and Recall@20 0.2309 +- 0.0005
against 0.2337 +- 0.0013 (wmf); 6 x 4 blocks at Adam 0.01 save no time (more epochs). A step is
bound by the K d x d transfers of its block's users and items (about 7 ms for 504 x 427 at d = 64),
so the fit costs its ~13 epochs of 96 steps: about 6x one shard's fit (2.0 s) on ML-1M.

`transfer_init`: `auto` (default) follows the same file: `glorot` (glorot-normal W_k and b_k) for the
BPR family, `normal` (N(0, 0.01^2), RecEraser_WMF.py's random_normal_initializer(stddev=0.01)) for
`wmf`; or `identity` (W_k = I, b_k = 0: training starts from the plain average of the shard
embeddings). The numbers below predate `auto` (glorot and 1e-5 for both families). On ML-100K
(UBP, K = 10, test recall@20 after early stopping on valid) glorot gave 0.271 vs 0.255 with BPR
shards and 0.274 vs 0.282 with WMF shards; the mean aggregator 0.244 and 0.251.
"""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..registry import AGGREGATORS
from ..training import (
    STOPPING_DEFAULTS,
    EarlyStopping,
    NegativeSampler,
    TrainingTriples,
    UserRows,
    block_negatives,
    make_optimizer,
    pair_scores,
    wmf_whole_data_loss,
)
from .base import Aggregator

log = logging.getLogger(__name__)

TRAINABLE_LOSSES = ("bpr", "wmf")  # the loss families this aggregator can train with
# `optimizer: auto` / `lr: auto` on the entity schedule, per loss family (schedule=batch takes the
# sub-model's, as released). WMF: the released Adagrad (lr 0.05, accumulator 1e-8) climbs for ~190
# epochs on ML-1M (197 s, test NDCG@20 0.3345); Adam 0.01 stops after 15 (15 s, 0.3326), same blocks,
# seed 0. BPR: the shards' lr is a poor fit for the aggregator once a preset tunes it for the shards:
# ML-100K, submodel=tuned/ml100k_bpr (lr 5.3e-4), UBP K = 10, 3 seeds, test NDCG@20 0.2775 +- 0.0165
# at the shards' lr against 0.2976 +- 0.0084 at 0.005 (10.2 / 10.0 s); 0.01 stops sooner and lower
# there (0.2860) and on ML-1M (0.2851 against 0.2892 +- 0.0014 at 0.005, the bpr class preset's lr).
ENTITY_OPTIMIZER = {"bpr": {"optimizer": "adam", "lr": 0.005}, "wmf": {"optimizer": "adam", "lr": 0.01}}
# `entity_batch: auto` / `item_batch: auto`: an epoch is USER_BLOCKS x ITEM_BLOCKS steps whatever the
# dataset's size (ml1m_cure4rec: blocks of 504 users x 427 items; ML-100K: 79 x 211), so patience counted in
# epochs means the same number of steps everywhere.
USER_BLOCKS, ITEM_BLOCKS = 12, 8
# `lr_halvings: auto` on the entity schedule: at a validation plateau the fit returns to its best
# state and halves the learning rate, this many times, before it stops (the released schedule: 0)
LR_HALVINGS = 2
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


class AttentionNet(torch.nn.Module):
    def __init__(self, k: int, d: int, hidden: int, separate: bool):
        super().__init__()
        self.separate = separate
        self.trans_w = torch.nn.Parameter(torch.empty(k, d, d))
        self.trans_b = torch.nn.Parameter(torch.empty(k, d))
        if separate:
            self.trans_w_item = torch.nn.Parameter(torch.empty(k, d, d))
            self.trans_b_item = torch.nn.Parameter(torch.empty(k, d))
        self.wa = torch.nn.Parameter(torch.empty(d, hidden))  # user attention
        self.ba = torch.nn.Parameter(torch.empty(hidden))
        self.ha = torch.nn.Parameter(torch.empty(hidden))
        self.wb = torch.nn.Parameter(torch.empty(d, hidden))  # item attention
        self.bb = torch.nn.Parameter(torch.empty(hidden))
        self.hb = torch.nn.Parameter(torch.empty(hidden))

    def reset_parameters(self, gen: torch.Generator, init: str) -> None:
        k, d, _ = self.trans_w.shape
        hidden = self.wa.shape[1]
        with torch.no_grad():
            pairs = [(self.trans_w, self.trans_b)]
            if self.separate:
                pairs.append((self.trans_w_item, self.trans_b_item))
            for w, b in pairs:
                if init == "identity":
                    w.copy_(torch.eye(d).expand(k, d, d))
                    b.zero_()
                elif init == "normal":  # RecEraser_WMF.py: tf.random_normal_initializer(stddev=0.01)
                    w.copy_(torch.randn(w.shape, generator=gen) * 0.01)
                    b.copy_(torch.randn(b.shape, generator=gen) * 0.01)
                else:  # glorot normal, as tf.initializers.glorot_normal on (K, d, d) and (K, d)
                    w.copy_(torch.randn(w.shape, generator=gen) * math.sqrt(2.0 / (k * d + k * d)))
                    b.copy_(torch.randn(b.shape, generator=gen) * math.sqrt(2.0 / (k + d)))
            std = math.sqrt(2.0 / (hidden + d))  # released: truncated normal; bias 0; h = 0.01
            for w, b, h in ((self.wa, self.ba, self.ha), (self.wb, self.bb, self.hb)):
                w.copy_(torch.fmod(torch.randn(w.shape, generator=gen), 2.0) * std)
                b.zero_()
                h.fill_(0.01)

    def transfer(self, e: torch.Tensor, item: bool) -> torch.Tensor:
        """(K x B x d) -> (K x B x d): W_k e^k + b_k."""
        w, b = (self.trans_w_item, self.trans_b_item) if (item and self.separate) else (self.trans_w, self.trans_b)
        return torch.baddbmm(b[:, None, :], e, w)

    def combine(self, e: torch.Tensor, item: bool) -> torch.Tensor:
        """Attention-weighted sum over the K transferred vectors: (K x B x d) -> (B x d)."""
        t = self.transfer(e, item)
        w, b, h = (self.wb, self.bb, self.hb) if item else (self.wa, self.ba, self.ha)
        logits = F.relu(t @ w + b) @ h  # (K x B)
        alpha = torch.softmax(logits, dim=0)
        return (alpha[:, :, None] * t).sum(0)

    def transfer_l2(self) -> torch.Tensor:
        total = self.trans_w.pow(2).sum() + self.trans_b.pow(2).sum()
        if self.separate:
            total = total + self.trans_w_item.pow(2).sum() + self.trans_b_item.pow(2).sum()
        return 0.5 * total


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
    def _dropout(self, u: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
        if p <= 0:
            return u
        keep = (torch.rand(u.shape, generator=gen) >= p).to(u.device)
        return u * keep / (1.0 - p)

    def fit(self, shards, partition, data: TrainSet, seed: int) -> dict:
        start = time.perf_counter()
        before = shard_state(shards)
        self.bind(shards, partition)
        dev = self.runtime.device
        self._absent = torch.as_tensor(data.train.user_counts(data.n_users) == 0, device=dev)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        family = self._loss_family()
        init = self.cfg["transfer_init"]
        self.net.reset_parameters(gen, ("normal" if family == "wmf" else "glorot") if init == "auto" else init)
        reg = self.cfg["reg"]
        reg = (0.0 if family == "wmf" else 1.0e-5) if reg == "auto" else float(reg)
        self.resolved = {
            **self._optimizer_settings(family),
            **self._block_sizes(data),
            "lr_halvings": self._halvings(),
            "epochs": self._epoch_cap(),
        }
        opt = make_optimizer(self.net.parameters(), self.resolved)
        hp = {"p_drop": float(self._setting("dropout", 0.0)), "reg": reg, "c0": float(self._setting("c0", 0.2))}
        rows = UserRows(data.train.users, data.train.items, data.n_users, data.n_items, dev)
        if self.cfg["schedule"] == "entity":
            sampler = NegativeSampler(
                torch.as_tensor(data.train.users, device=dev),
                torch.as_tensor(data.train.items, device=dev),
                self.n_items,
            )
            steps = self._entity_steps(
                rows, sampler, family, self.resolved["entity_batch"], self.resolved["item_batch"], hp
            )
        else:
            bs = int(self._setting("batch_size", 1024))
            triples = (
                TrainingTriples(data.train.users, data.train.items, self.n_items, dev) if family == "bpr" else None
            )
            steps = self._batch_steps(rows, triples, family, bs, hp)
        stopper = EarlyStopping(data, self.cfg, self.runtime)
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
        stopper.restore(self.net)
        self.net.eval()
        self._items_cache = None
        if shard_state(shards) != before:  # stop-gradient: no shard parameter or gradient moved
            raise RuntimeError("aggregator=attention: a shard's parameters or gradients changed while fitting it")
        self.runtime.sync()
        return {
            **stopper.report(start),
            "settings": dict(self.resolved),
            "lr_final": opt.param_groups[0]["lr"],
            "epoch_cap": self.resolved["epochs"],
        }

    def _epoch_cap(self) -> int:
        """The aggregator's epoch cap, lowered to the sub-model's: a user who caps the shards'
        epochs (a quick run) caps the aggregator's training too."""
        own, shards = int(self.cfg["epochs"]), self._sub_cfg.get("epochs")
        if shards is None or int(shards) >= own:
            return own
        log.debug("aggregator=attention: epoch cap %d lowered to the sub-model's %d", own, int(shards))
        return int(shards)

    def _optimizer_settings(self, family: str) -> dict:
        """optimizer / lr / adagrad_init: a value, null (the sub-model's) or auto (the sub-model's
        on schedule=batch, as released; ENTITY_OPTIMIZER of the loss family on the entity schedule,
        its lr only with its optimiser)."""
        ours = self.cfg.get("optimizer") == "auto" and self.cfg["schedule"] == "entity"
        out = {}
        for key, fallback in (("optimizer", "adam"), ("lr", 1e-3), ("adagrad_init", 0.1)):
            value = self.cfg.get(key)
            if value == "auto":
                value = ENTITY_OPTIMIZER[family].get(key) if ours else None
            out[key] = self._sub_cfg.get(key, fallback) if value is None else value
        out["lr"] = float(out["lr"])
        return out

    def _halvings(self) -> int:
        value = self.cfg["lr_halvings"]
        value = (LR_HALVINGS if self.cfg["schedule"] == "entity" else 0) if value == "auto" else int(value)
        if value < 0:
            raise ConfigError(f"aggregator.lr_halvings must be auto or an integer >= 0, got {value}.")
        return value

    def _block_sizes(self, data: TrainSet) -> dict:
        """Users and items per step of schedule=entity (item_batch None: every item)."""
        if self.cfg["schedule"] != "entity":
            return {}
        n_users = int((data.train.user_counts(data.n_users) > 0).sum())
        out = {}
        for key, n, blocks in (("entity_batch", n_users, USER_BLOCKS), ("item_batch", self.n_items, ITEM_BLOCKS)):
            value = self.cfg.get(key)
            if value == "auto":
                value = max(1, math.ceil(n / blocks))
            elif value is not None:
                value = int(value)
                if value < 1:
                    raise ConfigError(f"aggregator.{key} must be a positive integer, auto or null; got {value}.")
            out[key] = value
        if out["entity_batch"] is None:
            raise ConfigError("aggregator.entity_batch must be a positive integer or auto, not null.")
        return out

    def _entity_steps(
        self, rows: UserRows, sampler: NegativeSampler, family: str, batch: int, item_batch: int | None, hp: dict
    ):
        """One step per block of `batch` distinct users x `item_batch` distinct items (null: all
        items), with every retained row inside the block: the block's users and items are
        combined once per step, so an epoch combines each user once per item block and each item
        once per user block. Item blocks are a fresh random partition of the items every epoch.
        BPR: one negative per row, drawn from the row's item block and rejected against the user's
        retained rows; WMF: the whole-data loss of the block (its rows, and the Gram matrices of
        the block's combined vectors), so an epoch's blocks sum to the whole-data loss."""
        n_items = self.n_items
        item_batch = item_batch or n_items
        dev = self.runtime.device
        slot = torch.empty(n_items, dtype=torch.long, device=dev)  # an item's position in its block

        def step(users, user_emb, local, block, item_emb, cols, gen):
            # the frozen shard vectors of the block come gathered once per epoch (items) and once
            # per user block (users); users in a batch all have rows, so no absent-user rule applies
            p = self._dropout(self.net.combine(user_emb, item=False), hp["p_drop"], gen)
            q = self.net.combine(item_emb, item=True)
            if family == "bpr":
                if block is None:
                    neg_cols = sampler.sample(users[local], gen)
                else:
                    positive = torch.zeros(len(users), len(block), dtype=torch.bool, device=dev)
                    positive[local, cols] = True
                    neg_cols = block_negatives(positive, local, gen)
                pos_s, neg_s = pair_scores(p, q, torch.cat([local, local]), torch.cat([cols, neg_cols])).split(
                    len(cols)
                )
                loss = -F.logsigmoid(pos_s - neg_s).mean()
            else:
                loss = wmf_whole_data_loss(p, q, pair_scores(p, q, local, cols), hp["c0"])
            return loss + hp["reg"] * self.net.transfer_l2()

        def epoch(gen):
            if item_batch >= n_items:
                for users, local, items in rows.epoch(gen, batch):
                    yield step(users, self._users[:, users], local, None, self._items, items, gen)
                return
            perm = torch.randperm(n_items, generator=gen).to(dev)
            blocks = perm.split(item_batch)
            block_emb = [self._items[:, block] for block in blocks]
            block_of = torch.empty(n_items, dtype=torch.long, device=dev)
            block_of[perm] = torch.arange(n_items, device=dev) // item_batch
            slot[perm] = torch.arange(n_items, device=dev) % item_batch
            for users, local, items in rows.epoch(gen, batch):
                user_emb = self._users[:, users]
                b = block_of[items]
                order = torch.argsort(b, stable=True)
                counts = torch.bincount(b, minlength=len(blocks)).tolist()
                for block, item_emb, sel in zip(blocks, block_emb, order.split(counts)):
                    if len(sel) == 0 and family == "bpr":
                        continue  # no row in this block: BPR has nothing to rank
                    yield step(users, user_emb, local[sel], block, item_emb, slot[items[sel]], gen)

        return epoch

    def _batch_steps(self, rows: UserRows, triples, family: str, bs: int, hp: dict):
        """The released schedule: BPR over shuffled triples in batches of the sub-model's batch
        size; WMF over user batches of that size, all items combined for every batch."""

        def epoch(gen):
            if family == "bpr":
                for users, pos, neg in triples.epoch(gen, bs):
                    # transfer each distinct user / item of the batch once (the d x d maps dominate)
                    uniq_u, inv_u = torch.unique(users, return_inverse=True)
                    uniq_i, inv_i = torch.unique(torch.cat([pos, neg]), return_inverse=True)
                    u = self._dropout(self.user_vectors(uniq_u)[inv_u], hp["p_drop"], gen)
                    i, j = self.item_vectors(uniq_i)[inv_i].split(len(pos))
                    yield -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean() + hp["reg"] * self.net.transfer_l2()
            else:
                for users, local, items in rows.epoch(gen, bs):
                    p = self._dropout(self.user_vectors(users), hp["p_drop"], gen)
                    q = self.item_vectors()
                    x_pos = (p[local] * q[items]).sum(1)
                    yield wmf_whole_data_loss(p, q, x_pos, hp["c0"]) + hp["reg"] * self.net.transfer_l2()

        return epoch

    # -- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {} if self.net is None else {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        if self.net is None:
            raise RuntimeError("aggregator=attention: bind(shards, partition) before load_state_dict")
        self.net.load_state_dict({k: v.to(self.runtime.device) for k, v in state.items()})
        self.net.eval()
        self._items_cache = None
