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


class TrainSet:
    """What a method, or one trained component of it, may read: training rows over the fixed id
    universe, and the validation rows of the users it holds.

    `rows` are the training rows as deletion requests index them; `kept` marks the rows still
    retained (None: all of them). `train` gives the retained rows in ascending row order and
    `valid` only the validation rows of users with a retained row, so a deleted user, or a user
    of another shard, never steers model selection.

    "Train minus F" is `data.without(F)`, and nothing else: methods unlearning, the retrain oracle
    and the exact replica all read that one representation, indexed by the same rows.
    """

    def __init__(self, n_users: int, n_items: int, train: Interactions, valid: Interactions,
                 kept: np.ndarray | None = None, features=None):
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.features = features  # side features of the id universe (data.features.LazyFeatures) or None
        self.rows = train
        self.all_valid = valid
        if kept is not None:
            kept = np.asarray(kept, dtype=bool)
            if len(kept) != len(train):
                raise ValueError(f"kept mask has {len(kept)} entries for {len(train)} training rows")
        self.kept = kept
        self._train: Interactions | None = None
        self._valid: Interactions | None = None

    @property
    def row_index(self) -> np.ndarray:
        """Indices (into `rows`) of the retained rows, ascending."""
        return np.arange(len(self.rows)) if self.kept is None else np.flatnonzero(self.kept)

    @property
    def kept_mask(self) -> np.ndarray:
        return np.ones(len(self.rows), dtype=bool) if self.kept is None else self.kept.copy()

    @property
    def train(self) -> Interactions:
        if self._train is None:
            self._train = self.rows if self.kept is None else self.rows.subset(self.row_index)
        return self._train

    @property
    def valid(self) -> Interactions:
        if self._valid is None:
            self._valid = self.all_valid.of_users(self.train.user_mask(self.n_users))
        return self._valid

    def without(self, rows: np.ndarray) -> "TrainSet":
        """The same data with `rows` (indices into `rows`) no longer retained."""
        kept = self.kept_mask
        kept[np.asarray(rows, dtype=np.int64)] = False
        return TrainSet(self.n_users, self.n_items, self.rows, self.all_valid, kept, self.features)

    def select(self, mask: np.ndarray) -> "TrainSet":
        """One component's data: the retained rows where `mask` (over `rows`) is set, in row order."""
        return TrainSet(self.n_users, self.n_items, self.rows.subset(np.flatnonzero(self.kept_mask & mask)),
                        self.all_valid, features=self.features)
