"""Splits, all seeded: `random` per-user ratios, `loo` temporal leave-one-out,
`published` (given train/test; validation carved from train per user)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..registry import SPLITS
from ..seeding import numpy_rng


def _position_in_user(users: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each row within its user by `keys`, and the user's row count."""
    order = np.lexsort((keys, users))
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(len(users), dtype=np.int64)
    sorted_users = users[order]
    pos[order] = np.arange(len(users)) - starts[sorted_users]
    return pos, counts[users]


def _carve(df: pd.DataFrame, fractions: list[float], rng) -> list[pd.DataFrame]:
    """Per user, shuffle rows and cut them into parts of the given fractions (first part keeps
    the rest and at least one row)."""
    users = df["user"].to_numpy()
    pos, n = _position_in_user(users, rng.random(len(df)))
    sizes = [np.floor(f * n + 0.5).astype(np.int64) for f in fractions[1:]]
    labels = np.zeros(len(df), dtype=np.int64)
    start = np.zeros(len(df), dtype=np.int64)
    for part, size in enumerate(sizes, 1):
        size = np.minimum(size, np.maximum(n - 1 - start, 0))
        labels[(pos >= start) & (pos < start + size)] = part
        start = start + size
    return [df[labels == p] for p in range(len(fractions))]


@SPLITS.register("random")
def random_split(frames, cfg, seed):
    ratios = [float(r) for r in cfg.get("ratios", [0.7, 0.1, 0.2])]
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6 or ratios[0] <= 0:
        raise ConfigError(f"dataset.split.ratios must be three non-negative train/valid/test fractions summing to 1, got {ratios}.")
    df = pd.concat(list(frames.values()))
    train, valid, test = _carve(df, [ratios[0], ratios[1], ratios[2]], numpy_rng(seed, "split", "random"))
    return train, valid, test


@SPLITS.register("loo")
def loo_split(frames, cfg, seed):
    """Leave-one-out: per user (with at least 3 rows) the latest row is test, the second latest
    validation. `order: time` (default) needs timestamps; `order: random` picks the two rows at
    random (seeded), for datasets without timestamps."""
    df = pd.concat(list(frames.values()))
    order = cfg.get("order", "time")
    if order not in ("time", "random"):
        raise ConfigError(f"Unknown dataset.split.order '{order}'. Valid: time, random.")
    if order == "time" and ("ts" not in df or df["ts"].isna().any()):
        raise ConfigError("split=loo needs timestamps, and this dataset has none. Use split=random or published, "
                          "or dataset.split.order=random.")
    rng = numpy_rng(seed, "split", "loo")
    users = df["user"].to_numpy()
    # latest first; ties in time broken by the seeded random key
    key = rng.random(len(df)) if order == "random" else \
        -(df["ts"].to_numpy().astype(np.float64)) + rng.random(len(df)) * 1e-3
    pos, n = _position_in_user(users, key)
    test = (pos == 0) & (n >= 3)
    valid = (pos == 1) & (n >= 3)
    return df[~test & ~valid], df[valid], df[test]


@SPLITS.register("published")
def published_split(frames, cfg, seed):
    if "train" not in frames:
        raise ConfigError("split=published needs a dataset with a published train/test split.")
    valid_ratio = float(cfg.get("valid_ratio", 0.1))
    if not 0 <= valid_ratio < 1:  # 0: no validation carve-out (train is the published train)
        raise ConfigError(f"dataset.split.valid_ratio must be a fraction in [0, 1) of each user's train rows "
                          f"carved out for validation (0: none), got {valid_ratio}.")
    train, valid = _carve(frames["train"], [1 - valid_ratio, valid_ratio], numpy_rng(seed, "split", "published"))
    test = frames["test"]
    key = lambda f: f["user"].to_numpy() * (1 << 32) + f["item"].to_numpy()
    overlap = np.isin(key(test), key(frames["train"]))
    if overlap.any():
        test = test[~overlap]
    return train, valid, test


def check_nonempty(name: str, train, test):
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"Dataset '{name}' has an empty train or test split after preprocessing.")


@SPLITS.register("cells")
def cells_split(frames, cfg, seed):
    """Every observed cell is held out for test with probability `test` (and for validation with
    `valid`), independently of its user: the Unlearn-ALS paper's "1% of all cells" protocol. The
    held-out *negative* cells are drawn by the `heldout_cells` probe at evaluation time."""
    p_test, p_valid = float(cfg.get("test", 0.01)), float(cfg.get("valid", 0.0))
    if not (0 < p_test < 1 and 0 <= p_valid < 1 and p_test + p_valid < 1):
        raise ConfigError(f"dataset.split test={p_test} and valid={p_valid} must be fractions summing below 1.")
    df = pd.concat(list(frames.values()))
    u = numpy_rng(seed, "split", "cells").random(len(df))
    return df[u >= p_test + p_valid], df[(u >= p_test) & (u < p_test + p_valid)], df[u < p_test]
