"""Preprocessing: duplicates, rating threshold, iterative k-core, id remapping."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError


def clean(df: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    df = df.copy()
    if "ts" in df:
        df = df.sort_values("ts", kind="stable")
    df = df.drop_duplicates(["user", "item"], keep="last")
    min_rating = cfg.get("min_rating")
    if min_rating is not None:
        df = df[df["rating"] >= float(min_rating)]
    if cfg.get("binarize", False):
        df["rating"] = 1.0
    return kcore(df, int(cfg.get("kcore", 0) or 0))


def kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than k interactions."""
    if k <= 1:
        return df
    while True:
        uc = df["user"].map(df["user"].value_counts())
        ic = df["item"].map(df["item"].value_counts())
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return df
        df = df[keep]


def remap(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], np.ndarray, np.ndarray]:
    """Ids -> 0..n-1 over the union of the frames, in sorted raw-id order; maps returned."""
    all_users = np.unique(np.concatenate([f["user"].to_numpy() for f in frames.values()]))
    all_items = np.unique(np.concatenate([f["item"].to_numpy() for f in frames.values()]))
    if len(all_users) == 0:
        raise DataError("No interactions are left after preprocessing (check min_rating and kcore).")
    out = {}
    for key, f in frames.items():
        f = f.copy()
        f["user"] = np.searchsorted(all_users, f["user"].to_numpy())
        f["item"] = np.searchsorted(all_items, f["item"].to_numpy())
        out[key] = f
    return out, all_users, all_items
