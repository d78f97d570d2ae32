"""Readers for the raw formats of Each returns (frames, has_published_split) where
frames maps 'all' or 'train'/'test' to a DataFrame of user, item, rating[, ts] (raw ids)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..registry import DATASETS
from . import synthetic


def _bad_line(path: Path, sep: str, n_fields: int, skip: int, numeric: int) -> str:
    with open(path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if lineno <= skip or not line.strip():
                continue
            parts = line.rstrip("\r\n").split(sep)
            if len(parts) < n_fields:
                return f"{path}, line {lineno}: expected {n_fields} fields separated by {sep!r}, got {line.strip()[:80]!r}"
            try:
                [float(p) for p in parts[:numeric]]
            except ValueError:
                return f"{path}, line {lineno}: non-numeric field in {line.strip()[:80]!r}"
    return f"{path}: could not be parsed"


def read_table(path: Path, sep: str, names: list[str], skip: int = 0) -> pd.DataFrame:
    """A delimited numeric table; a malformed line is reported with its file and line number."""
    try:
        df = pd.read_csv(path, sep=sep, header=None, names=names, skiprows=skip, engine="python" if len(sep) > 1 else "c",
                         usecols=range(len(names)), dtype=np.float64, encoding="latin-1")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"Malformed data: {_bad_line(path, sep, len(names), skip, len(names))}") from exc
    if df.isna().any().any():
        raise DataError(f"Malformed data: {_bad_line(path, sep, len(names), skip, len(names))}")
    return df


def read_adjacency(path: Path) -> pd.DataFrame:
    """LightGCN format: `uid item item ...` per line."""
    users, items = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids = [int(p) for p in parts]
            except ValueError:
                raise DataError(f"Malformed data: {path}, line {lineno}: expected integer ids, got {line.strip()[:80]!r}") from None
            users.append(np.full(len(ids) - 1, ids[0]))
            items.append(np.asarray(ids[1:]))
    if not users:
        raise DataError(f"Malformed data: {path} holds no interactions.")
    u, i = np.concatenate(users), np.concatenate(items)
    return pd.DataFrame({"user": u, "item": i, "rating": np.ones(len(u))})


@DATASETS.register("movielens_tab")
def movielens_tab(paths, cfg):
    return {"all": read_table(paths[0], "\t", ["user", "item", "rating", "ts"])}, False


@DATASETS.register("movielens_dat")
def movielens_dat(paths, cfg):
    return {"all": read_table(paths[0], "::", ["user", "item", "rating", "ts"])}, False


@DATASETS.register("movielens_csv")
def movielens_csv(paths, cfg):
    return {"all": read_table(paths[0], ",", ["user", "item", "rating", "ts"], skip=1)}, False


@DATASETS.register("uid_iid_csv")
def uid_iid_csv(paths, cfg):
    train, test = (read_table(p, ",", ["user", "item", "rating"], skip=1) for p in paths[:2])
    return {"train": train, "test": test}, True


@DATASETS.register("lightgcn_txt")
def lightgcn_txt(paths, cfg):
    return {"train": read_adjacency(paths[0]), "test": read_adjacency(paths[1])}, True


@DATASETS.register("lastfm_tab")
def lastfm_tab(paths, cfg):
    frames = {}
    for key, p in zip(("train", "test"), paths[:2]):
        df = read_table(p, "\t", ["user", "item", "rating"])
        df[["user", "item"]] -= 1  # 1-based ids
        df["rating"] = 1.0
        frames[key] = df
    return frames, True


@DATASETS.register("synthetic")
def synthetic_loader(paths, cfg):
    return {"all": synthetic.generate(cfg.get("generator", {}))}, False
