"""Which parameters an influence step moves (the block S), and the flat vector x_S of them.

- `users`: the rows of the users in F. For every sub-model but LightGCN the Hessian of this block
  is block-diagonal (one d x d block per user, items fixed), solved exactly user by user;
- `users_items`: the users and the items in F;
- `khop`: IFRU's neighbourhood: the nodes of F and their neighbours `hops` steps away in the
  training graph before the request (self-loops included, as the released code's padded
  adjacency has them). The released code's pruning keeps every neighbour whose weight is above
  0, which is every neighbour: nothing is pruned here either;
- `all`: every user and item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

BLOCKS = ("users", "users_items", "khop", "all")


@dataclass
class Block:
    users: torch.Tensor  # user ids whose rows move, ascending
    items: torch.Tensor  # item ids whose rows move, ascending
    dim: int

    @property
    def size(self) -> int:
        return (len(self.users) + len(self.items)) * self.dim

    def gather(self, user_table: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """x_S: the block's rows, flattened (users first)."""
        return torch.cat([user_table[self.users].reshape(-1), item_table[self.items].reshape(-1)])

    def place(self, x: torch.Tensor, user_table: torch.Tensor, item_table: torch.Tensor):
        """The full tables with the block's rows read from x (differentiable in x)."""
        n_u = len(self.users) * self.dim
        u = user_table.index_copy(0, self.users, x[:n_u].view(-1, self.dim)) if len(self.users) else user_table
        i = item_table.index_copy(0, self.items, x[n_u:].view(-1, self.dim)) if len(self.items) else item_table
        return u, i

    def add_(self, step: torch.Tensor, user_table: torch.Tensor, item_table: torch.Tensor) -> None:
        """Move the block's rows of the tables by `step`, in place."""
        n_u = len(self.users) * self.dim
        with torch.no_grad():
            if len(self.users):
                user_table.index_add_(0, self.users, step[:n_u].view(-1, self.dim).to(user_table.dtype))
            if len(self.items):
                item_table.index_add_(0, self.items, step[n_u:].view(-1, self.dim).to(item_table.dtype))


def check_block(name: str, hops: int) -> None:
    if name not in BLOCKS:
        raise ConfigError(f"Unknown method.block '{name}'. Valid: {', '.join(BLOCKS)}.")
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ConfigError(f"method.hops must be a non-negative integer, got {hops!r}.")


def select(
    name: str,
    forget_users: np.ndarray,
    forget_items: np.ndarray,
    before_users: np.ndarray,
    before_items: np.ndarray,
    n_users: int,
    n_items: int,
    hops: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, item ids) of the block for forget rows with these users and items, on the
    training graph before the request (`before_*`: its rows)."""
    fu, fi = np.unique(forget_users), np.unique(forget_items)
    if name == "users":
        return fu, np.zeros(0, dtype=np.int64)
    if name == "users_items":
        return fu, fi
    if name == "all":
        return np.arange(n_users), np.arange(n_items)
    users = np.zeros(n_users, dtype=bool)
    items = np.zeros(n_items, dtype=bool)
    users[fu], items[fi] = True, True
    for _ in range(hops):  # one hop: every neighbour of the current set, the set itself (self-loops) kept
        from_users = users[before_users]
        from_items = items[before_items]
        new_items = items.copy()
        new_items[before_items[from_users]] = True
        users[before_users[from_items]] = True
        items = new_items
    return np.flatnonzero(users), np.flatnonzero(items)
