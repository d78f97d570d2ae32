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

    def padded(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(users), L) of each user's stored values, left-aligned in stored order and padded
        with 0 to the longest list of the batch (L >= 1), and the (len(users), L) mask of real
        entries; on the CPU, in numpy."""
        users = np.asarray(users, dtype=np.int64)
        counts, indptr = self.counts.cpu().numpy()[users], self.indptr.cpu().numpy()[users]
        width = max(int(counts.max()) if len(counts) else 0, 1)
        col = np.arange(width)[None, :]
        mask = col < counts[:, None]
        if len(self.indices) == 0:
            return np.zeros(mask.shape, dtype=np.int64), mask
        values = self.indices.cpu().numpy()
        return np.where(mask, values[np.where(mask, indptr[:, None] + col, 0)], 0), mask

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Membership of (users[:, None], items) pairs, same shape as `items`."""
        keys = users.view(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        if len(self.keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == keys


def rows_by_user(row_users: np.ndarray, rows: np.ndarray, n_users: int) -> CSR:
    """Row indices grouped by user (ascending within a user) as a CSR on the CPU: `indices` holds
    the rows, `padded(users)` gives a batch of users' rows as a padded matrix."""
    rows = np.asarray(rows, dtype=np.int64)
    n = int(rows.max()) + 1 if len(rows) else 1
    return CSR(Interactions(row_users[rows], rows, np.ones(len(rows))), n_users, n, torch.device("cpu"))
