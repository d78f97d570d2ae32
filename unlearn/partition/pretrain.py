"""Embeddings from a model pretrained on all of train, for the clustering partitioners
(RecEraser's balanced partitions, UltraRE's OT, k-means). Cached by content hash.

Because the model saw the forget set, a partition built on them depends on F: the record says
so (`partition_uses_forget`).

Every clustering partitioner (ubp, ibp, inbp, kmeans, ot) has the same default source,
`CLUSTERING_EMBEDDING`: WMF trained to convergence (`converge: true`: 10% of each user's train rows
carved out, seeded, early stopping on their validation metric (NDCG@20 by default) with the model's patience, at most
`epochs`;
then the model is refitted on all of train for the best epoch count). `converge: false` trains for
`epochs` epochs (the old behaviour). `partitioner.embedding` overrides it per partitioner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import io
from ..code_version import training_code_version
from ..data.interactions import Interactions, TrainSet
from ..metrics.timing import Span, clock
from ..registry import SUBMODELS
from ..runtime import Runtime
from ..seeding import derive_seed, numpy_rng

# the one default embedding source of every clustering partitioner (see the module docstring)
CLUSTERING_EMBEDDING = {"name": "wmf", "dim": 64, "epochs": 200, "converge": True}


def _carve_valid(train: Interactions, seed: int, ratio: float = 0.1):
    """(fit rows, validation rows): floor(ratio * n_u) of each user's rows at random, seeded."""
    users = np.asarray(train.users)
    key = numpy_rng(seed, "pretrain", "valid").random(len(users))
    order = np.lexsort((key, users))
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(len(users), dtype=np.int64)
    pos[order] = np.arange(len(users)) - starts[users[order]]
    valid = pos < np.floor(ratio * counts[users])
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def pretrained_embeddings(
    train: Interactions,
    n_users: int,
    n_items: int,
    model_cfg: dict,
    seed: int,
    runtime: Runtime,
    cache_dir: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, Span]:
    """(user embeddings, item embeddings, the Span their training took). A cache hit returns the
    Span recorded when they were trained, so records do not depend on what ran before."""
    cfg = dict(model_cfg)
    name = cfg.get("name", "wmf")
    converge = bool(cfg.pop("converge", False))
    if not converge:
        cfg.setdefault("patience", 0)  # no validation split here: train for the configured epochs
    cls = SUBMODELS.get(name)
    resolved = {**cls.defaults, **{k: v for k, v in cfg.items() if k != "name"}}  # a changed default is a new key
    model_key = {"name": name, **resolved, **({"converge": True} if converge else {})}
    key = io.stable_hash(
        {
            "train": train.content_hash(),
            "n": [n_users, n_items],
            "model": model_key,
            "seed": seed,
            "code": training_code_version(),
        },
        16,
    )
    path = Path(cache_dir) / "pretrain" / f"{name}-{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        t = io.read_tensors(path)
        cpu = float(t["cpu_seconds"]) if "cpu_seconds" in t else float("nan")
        return t["users"], t["items"], Span(float(t["seconds"]), cpu)  # the cost of producing them, cached or not
    start = clock()
    if converge:  # find the converged epoch count on a carved validation set, then refit on all of train
        fit_rows, valid_rows = _carve_valid(train, derive_seed(seed, "pretrain"))
        probe = cls(n_users, n_items, cfg, runtime=runtime)
        info = probe.fit(
            TrainSet(n_users, n_items, train.subset(fit_rows), train.subset(valid_rows)), derive_seed(seed, "pretrain")
        )
        best = info.kept_epoch or int(resolved["epochs"])
        cfg = {**cfg, "epochs": max(best, 1), "patience": 0}
        del probe
    model = cls(n_users, n_items, cfg, runtime=runtime)
    empty = train.subset(slice(0, 0))
    model.fit(TrainSet(n_users, n_items, train, empty), derive_seed(seed, "pretrain"))
    users, items = (e.detach().cpu().float() for e in model.embeddings())
    spent = clock() - start
    if path is not None:
        io.write_tensors(
            path,
            {
                "users": users,
                "items": items,
                "seconds": torch.tensor(spent.wall, dtype=torch.float64),
                "cpu_seconds": torch.tensor(spent.cpu, dtype=torch.float64),
            },
        )
    return users, items, spent
