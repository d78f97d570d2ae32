"""Training schedules of the attention aggregator: what one epoch steps over.

A schedule is a callable `schedule(gen)` that yields one loss per step of an epoch, drawing every
random number (shuffles, negatives, dropout) from `gen`; the aggregator's fit takes the optimiser
step after each. The schedule is ours to choose: exactness only needs the fit to be a deterministic
function of its seed and the retained rows.

`EntitySchedule` (`schedule: entity`, the default) steps over blocks of distinct users x items:
each epoch shuffles the users into `entity_batch` blocks and the items into `item_batch` blocks,
and one step takes one (user block, item block) pair with every retained row inside it, combining
each of its users and items once. A step's cost is the K transfers of its users and items (the
d x d maps dominate), so blocks keep it small while every row is still visited once an epoch; the
pairs' scores come from the dense block product (`training.pair_scores`). BPR draws one negative
per row inside the row's item block (rejected against the user's retained rows); WMF takes the
whole-data loss of the block, so an epoch's blocks sum to the whole-data loss (tested).

`BatchSchedule` (`schedule: batch`) is the released one: BPR over shuffled triples in batches of
the sub-model's batch size, WMF over user batches, every item combined at every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..training import NegativeSampler, UserRows, block_negatives, pair_scores, wmf_whole_data_loss
from .attention_net import AttentionNet


def dropout(u: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Inverted dropout on `u` with keep masks drawn on the CPU from `gen` (none when p <= 0)."""
    if p <= 0:
        return u
    keep = (torch.rand(u.shape, generator=gen) >= p).to(u.device)
    return u * keep / (1.0 - p)


class EntitySchedule:
    """One step per block of `batch` distinct users x `item_batch` distinct items (None: all
    items), with every retained row inside the block: the block's users and items are
    combined once per step, so an epoch combines each user once per item block and each item
    once per user block. Item blocks are a fresh random partition of the items every epoch.
    BPR: one negative per row, drawn from the row's item block and rejected against the user's
    retained rows; WMF: the whole-data loss of the block (its rows, and the Gram matrices of
    the block's combined vectors), so an epoch's blocks sum to the whole-data loss.

    `users` / `items` are the frozen shard embeddings (K x n x d); `hp` holds `p_drop`, `reg`
    and `c0`."""

    def __init__(
        self,
        net: AttentionNet,
        users: torch.Tensor,
        items: torch.Tensor,
        rows: UserRows,
        sampler: NegativeSampler,
        family: str,
        batch: int,
        item_batch: int | None,
        hp: dict,
        n_items: int,
        device: torch.device,
    ):
        self.net, self.users, self.items = net, users, items
        self.rows, self.sampler, self.family, self.batch, self.hp = rows, sampler, family, batch, hp
        self.n_items = n_items
        self.item_batch = item_batch or n_items
        self.device = device
        self.slot = torch.empty(n_items, dtype=torch.long, device=device)  # an item's position in its block

    def __call__(self, gen: torch.Generator):
        """The losses of one epoch's steps, in order."""
        if self.item_batch >= self.n_items:
            return self._all_items_epoch(gen)
        return self._item_blocks_epoch(gen)

    def _all_items_epoch(self, gen: torch.Generator):
        for users, local, items in self.rows.epoch(gen, self.batch):
            yield self.step(users, self.users[:, users], local, None, self.items, items, gen)

    def _item_blocks_epoch(self, gen: torch.Generator):
        n_items, item_batch, dev = self.n_items, self.item_batch, self.device
        perm = torch.randperm(n_items, generator=gen).to(dev)
        blocks = perm.split(item_batch)
        block_emb = [self.items[:, block] for block in blocks]
        block_of = torch.empty(n_items, dtype=torch.long, device=dev)
        block_of[perm] = torch.arange(n_items, device=dev) // item_batch
        self.slot[perm] = torch.arange(n_items, device=dev) % item_batch
        for users, local, items in self.rows.epoch(gen, self.batch):
            user_emb = self.users[:, users]
            b = block_of[items]
            order = torch.argsort(b, stable=True)
            counts = torch.bincount(b, minlength=len(blocks)).tolist()
            for block, item_emb, sel in zip(blocks, block_emb, order.split(counts)):
                if len(sel) == 0 and self.family == "bpr":
                    continue  # no row in this block: BPR has nothing to rank
                yield self.step(users, user_emb, local[sel], block, item_emb, self.slot[items[sel]], gen)

    def step(self, users, user_emb, local, block, item_emb, cols, gen: torch.Generator) -> torch.Tensor:
        """The loss of one block: rows (`local`, `cols`) index its users and items."""
        # the frozen shard vectors of the block come gathered once per epoch (items) and once
        # per user block (users); users in a batch all have rows, so no absent-user rule applies
        p = dropout(self.net.combine(user_emb, item=False), self.hp["p_drop"], gen)
        q = self.net.combine(item_emb, item=True)
        if self.family == "bpr":
            loss = self._bpr_loss(p, q, users, local, block, cols, gen)
        else:
            loss = wmf_whole_data_loss(p, q, pair_scores(p, q, local, cols), self.hp["c0"])
        return loss + self.hp["reg"] * self.net.transfer_l2()

    def _bpr_loss(self, p, q, users, local, block, cols, gen: torch.Generator) -> torch.Tensor:
        if block is None:
            neg_cols = self.sampler.sample(users[local], gen)
        else:
            positive = torch.zeros(len(users), len(block), dtype=torch.bool, device=self.device)
            positive[local, cols] = True
            neg_cols = block_negatives(positive, local, gen)
        pos_s, neg_s = pair_scores(p, q, torch.cat([local, local]), torch.cat([cols, neg_cols])).split(len(cols))
        return -F.logsigmoid(pos_s - neg_s).mean()


class BatchSchedule:
    """The released schedule: BPR over shuffled triples in batches of the sub-model's batch
    size; WMF over user batches of that size, all items combined for every batch.

    `user_vectors(users)` / `item_vectors(items or None)` combine the frozen shard vectors through
    `net` (the aggregator's, with its absent-user rule); `hp` holds `p_drop`, `reg` and `c0`."""

    def __init__(self, net: AttentionNet, user_vectors, item_vectors, rows: UserRows, triples, family, bs, hp):
        self.net, self.user_vectors, self.item_vectors = net, user_vectors, item_vectors
        self.rows, self.triples, self.family, self.bs, self.hp = rows, triples, family, bs, hp

    def __call__(self, gen: torch.Generator):
        """The losses of one epoch's steps, in order."""
        return self._bpr_epoch(gen) if self.family == "bpr" else self._wmf_epoch(gen)

    def _bpr_epoch(self, gen: torch.Generator):
        hp = self.hp
        for users, pos, neg in self.triples.epoch(gen, self.bs):
            # transfer each distinct user / item of the batch once (the d x d maps dominate)
            uniq_u, inv_u = torch.unique(users, return_inverse=True)
            uniq_i, inv_i = torch.unique(torch.cat([pos, neg]), return_inverse=True)
            u = dropout(self.user_vectors(uniq_u)[inv_u], hp["p_drop"], gen)
            i, j = self.item_vectors(uniq_i)[inv_i].split(len(pos))
            yield -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean() + hp["reg"] * self.net.transfer_l2()

    def _wmf_epoch(self, gen: torch.Generator):
        hp = self.hp
        for users, local, items in self.rows.epoch(gen, self.bs):
            p = dropout(self.user_vectors(users), hp["p_drop"], gen)
            q = self.item_vectors()
            x_pos = (p[local] * q[items]).sum(1)
            yield wmf_whole_data_loss(p, q, x_pos, hp["c0"]) + hp["reg"] * self.net.transfer_l2()
