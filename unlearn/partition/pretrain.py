"""Embeddings from a model pretrained on all of train, for the clustering partitioners
(RecEraser's balanced partitions, UltraRE's OT, k-means). Cached by content hash.

Because the model saw the forget set, a partition built on them depends on F: the record says
so (`partition_uses_forget`)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import io
from ..data.interactions import Interactions, TrainSet
from ..registry import SUBMODELS
from ..runtime import Runtime
from ..seeding import derive_seed


def pretrained_embeddings(train: Interactions, n_users: int, n_items: int, model_cfg: dict, seed: int,
                          runtime: Runtime, cache_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(user embeddings, item embeddings, seconds their training took). A cache hit returns the
    seconds recorded when they were trained, so records do not depend on what ran before."""
    cfg = dict(model_cfg)
    name = cfg.get("name", "wmf")
    cfg.setdefault("patience", 0)  # no validation split here: train for the configured epochs
    cls = SUBMODELS.get(name)
    resolved = {**cls.defaults, **{k: v for k, v in cfg.items() if k != "name"}}  # a changed default is a new key
    key = io.stable_hash({"train": train.content_hash(), "n": [n_users, n_items], "model": {"name": name, **resolved},
                          "seed": seed}, 16)
    path = Path(cache_dir) / "pretrain" / f"{name}-{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        t = io.read_tensors(path)
        return t["users"], t["items"], float(t["seconds"])  # the cost of producing them, cached or not
    start = time.perf_counter()
    model = cls(n_users, n_items, cfg, runtime=runtime)
    empty = train.subset(slice(0, 0))
    model.fit(TrainSet(n_users, n_items, train, empty), derive_seed(seed, "pretrain"))
    users, items = (e.detach().cpu().float() for e in model.embeddings())
    seconds = time.perf_counter() - start
    if path is not None:
        io.write_tensors(path, {"users": users, "items": items, "seconds": torch.tensor(seconds, dtype=torch.float64)})
    return users, items, seconds
