"""The data pipeline: raw files -> preprocessing -> split -> `Dataset`, cached by content hash."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import ConfigError
from ..registry import DATASETS, SPLITS
from . import loaders  # noqa: F401  (registers the readers)
from . import splits as _splits  # noqa: F401
from .download import ensure_files, verify
from .features import LazyFeatures
from .interactions import Dataset, Interactions
from .preprocess import clean, remap

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def _interactions(df: pd.DataFrame) -> Interactions:
    ts = df["ts"].to_numpy() if "ts" in df and not df["ts"].isna().any() else None
    return Interactions(df["user"].to_numpy(), df["item"].to_numpy(), df["rating"].to_numpy(), ts)


def load_dataset(cfg: dict, cache_dir: str | Path | None = None) -> Dataset:
    loader = DATASETS.get(cfg.get("loader", ""))
    split_cfg = dict(cfg.get("split") or {"name": "random"})
    split_fn = SPLITS.get(split_cfg.get("name", "random"))
    split_seed = int(split_cfg.get("seed", 0))
    paths = ensure_files(cfg) if cfg.get("files") else []
    digests = {p.name: verify(p, cfg) for p in paths}
    key = io.stable_hash({
        "v": CACHE_VERSION, "files": digests, "loader": cfg["loader"], "split": split_cfg,
        "preprocess": cfg.get("preprocess") or {}, "generator": cfg.get("generator") or {},
    }, 16)
    cache = Path(cache_dir) / "data" / f"{cfg['name']}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return _from_arrays(cfg["name"], key, io.read_npz(cache), cfg.get("folder"))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable data cache %s (%s)", cache, exc)
    frames, published = loader(paths, cfg)
    pre = cfg.get("preprocess") or {}
    if published:
        frames = {k: clean(f, {**pre, "kcore": 0}) for k, f in frames.items()}
    else:
        frames = {k: clean(f, pre) for k, f in frames.items()}
    if split_cfg.get("name") == "published" and not published:
        raise ConfigError(f"dataset {cfg['name']} has no published split; use dataset.split.name=random or loo.")
    frames, users_map, items_map = remap(frames)
    train, valid, test = split_fn(frames, split_cfg, split_seed)
    _splits.check_nonempty(cfg["name"], train, test)
    arrays = {"n_users": np.int64(len(users_map)), "n_items": np.int64(len(items_map)),
              "user_map": users_map, "item_map": items_map}
    for part, df in (("train", train), ("valid", valid), ("test", test)):
        it = _interactions(df)
        arrays.update({f"{part}.users": it.users, f"{part}.items": it.items, f"{part}.ratings": it.ratings})
        if it.timestamps is not None:
            arrays[f"{part}.ts"] = it.timestamps
    if cache is not None:
        io.write_npz(cache, arrays)
    return _from_arrays(cfg["name"], key, arrays, cfg.get("folder"))


def _from_arrays(name: str, key: str, a: dict, folder: str | None = None) -> Dataset:
    parts = {}
    for part in ("train", "valid", "test"):
        parts[part] = Interactions(a[f"{part}.users"], a[f"{part}.items"], a[f"{part}.ratings"], a.get(f"{part}.ts"))
    features = LazyFeatures(name, folder, a["user_map"], a["item_map"])  # side files, read on first use
    return Dataset(name, int(a["n_users"]), int(a["n_items"]), parts["train"], parts["valid"], parts["test"],
                   split_hash=key, info={"user_map": a["user_map"], "item_map": a["item_map"], "features": features})


from ..metrics.keys import KEYS  # noqa: E402

# identity of a split dataset (`Dataset.summary`, built here)
_ID = {"group": "identity"}
KEYS.declare("dataset", "dataset", doc="the dataset's registered name", **_ID)
KEYS.declare("n_users", "users", doc="users of the id universe", **_ID)
KEYS.declare("n_items", "items", doc="items of the id universe", **_ID)
KEYS.declare("n_train", "train rows", doc="training rows before deletion", **_ID)
KEYS.declare("n_valid", "valid rows", doc="validation rows", **_ID)
KEYS.declare("n_test", "test rows", doc="test rows", **_ID)
KEYS.declare("split_hash", "split hash", doc="hash of the split's content", **_ID)
