"""Interaction tables and the split dataset every component reads."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays of (user, item, rating[, timestamp]); ids are 0..n-1."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self):
        for name, dtype in (("users", np.int64), ("items", np.int64), ("ratings", np.float32), ("timestamps", np.int64)):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=dtype)
                if not value.flags.writeable:  # pandas copy-on-write views; torch wants writable arrays
                    value = value.copy()
                object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, index: np.ndarray) -> "Interactions":
        ts = None if self.timestamps is None else self.timestamps[index]
        return Interactions(self.users[index], self.items[index], self.ratings[index], ts)

    def without(self, rows: np.ndarray) -> "Interactions":
        keep = np.ones(len(self), dtype=bool)
        keep[rows] = False
        return self.subset(np.flatnonzero(keep))

    def of_users(self, user_mask: np.ndarray) -> "Interactions":
        """Rows whose user is set in a boolean mask over user ids."""
        return self.subset(np.flatnonzero(user_mask[self.users]))

    def user_counts(self, n_users: int) -> np.ndarray:
        return np.bincount(self.users, minlength=n_users)

    def item_counts(self, n_items: int) -> np.ndarray:
        return np.bincount(self.items, minlength=n_items)

    def user_mask(self, n_users: int) -> np.ndarray:
        return self.user_counts(n_users) > 0

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for a in (self.users, self.items, self.ratings):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    @staticmethod
    def concat(parts: list["Interactions"]) -> "Interactions":
        ts = None
        if all(p.timestamps is not None for p in parts):
            ts = np.concatenate([p.timestamps for p in parts])
        return Interactions(
            np.concatenate([p.users for p in parts]),
            np.concatenate([p.items for p in parts]),
            np.concatenate([p.ratings for p in parts]),
            ts,
        )


@dataclass
class Dataset:
    """A preprocessed, split dataset. `train` rows are what deletion requests index into."""

    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    split_hash: str = ""
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "n_users": int(self.n_users),
            "n_items": int(self.n_items),
            "n_train": len(self.train),
            "n_valid": len(self.valid),
            "n_test": len(self.test),
            "split_hash": self.split_hash,
        }


@dataclass
class TrainSet:
    """What one trained component may read: its own interactions and the validation rows of
    the users it holds, over the fixed id universe."""

    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions

    @staticmethod
    def for_rows(n_users: int, n_items: int, train: Interactions, valid: Interactions) -> "TrainSet":
        """Restrict validation to users present in `train` (so a deleted user, or a user of
        another shard, never steers this component's model selection)."""
        return TrainSet(n_users, n_items, train, valid.of_users(train.user_mask(n_users)))
