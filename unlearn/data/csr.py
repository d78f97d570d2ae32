"""Per-user item lists on the device (compressed sparse rows): masking score rows, looking up
hits, and grouping a component's rows by user."""
from __future__ import annotations

import numpy as np
import torch

from .interactions import Interactions


class CSR:
    """Per-user item lists on the device, for masking score rows and looking up hits."""

    def __init__(self, rows: Interactions, n_users: int, n_items: int, device: torch.device):
        order = np.lexsort((rows.items, rows.users))
        users, items = rows.users[order], rows.items[order]
        counts = np.bincount(users, minlength=n_users)
        self.n_items = n_items
        self.counts = torch.as_tensor(counts, device=device)
        self.indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), device=device)
        self.indices = torch.as_tensor(items, device=device)
        self.keys = torch.as_tensor(users * n_items + items, device=device)  # sorted
        self.device = device

    def positions(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in the batch, item) of every stored pair of the given users."""
        counts = self.counts[users]
        row = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        start_in_batch = torch.cumsum(counts, 0) - counts
        shift = self.indptr[users] - start_in_batch
        flat = torch.arange(len(row), device=self.device) + shift[row]
        return row, self.indices[flat]

    def dense(self, users: torch.Tensor) -> torch.Tensor:
        """Boolean (len(users) x n_items) matrix of each user's items."""
        out = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=self.device)
        row, col = self.positions(users)
        out[row, col] = True
        return out

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Membership of (users[:, None], items) pairs, same shape as `items`."""
        keys = users.view(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        if len(self.keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == keys
