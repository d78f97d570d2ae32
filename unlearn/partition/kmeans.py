"""`kmeans`: plain Lloyd k-means of users on pretrained embeddings (unbalanced), for comparison
with UltraRE's balanced `ot` clustering and RecEraser's `ubp`.

Also holds what every user-clustering partitioner shares (`EmbeddingPartitioner`): user
embeddings from a model pretrained on all of train (cached by content hash, so `kmeans`, `ot`
and `ubp` with the same embedding config and seed share one pretraining), clusters -> rows, and
the inertia. A partition built on these embeddings depends on the forget set
(`uses_forget=True`): the model that produced them saw F. The partition itself is fixed at fit
time and never recomputed by unlearning.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..metrics.timing import Span, clock
from ..registry import PARTITIONERS
from ..seeding import torch_generator
from .base import Partition, Partitioner, rows_from_units
from .pretrain import CLUSTERING_EMBEDDING, pretrained_embeddings

# sub-model the user embeddings come from: the one converged source every clustering partitioner
# shares (pretrain.CLUSTERING_EMBEDDING); any registered sub-model with `embeddings()` works
DEFAULT_EMBEDDING = CLUSTERING_EMBEDDING


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n x k) squared Euclidean distances, clamped at 0 (deterministic: no cdist kernels)."""
    d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return d.clamp_(min=0.0)


def member_means(x: torch.Tensor, labels: torch.Tensor, old: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids moved to the mean of their members; an empty cluster keeps its old centroid.
    Sums via a one-hot matmul (deterministic on CPU and CUDA, unlike index_add_)."""
    k = old.shape[0]
    onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
    counts = onehot.sum(0)
    sums = onehot.T @ x
    new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], old)
    return new, counts


def inertia(x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> float:
    """Sum of squared distances of every point to its cluster's centroid."""
    return float(((x - centroids[labels]) ** 2).sum())


def kmeans_pp_init(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): indices of k distinct points, every draw
    from the CPU generator `gen`."""
    n = x.shape[0]
    first = int(torch.randint(0, n, (1,), generator=gen))
    chosen = [first]
    d2 = sq_distances(x, x[first : first + 1])[:, 0].cpu().double()
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k: take any point not chosen yet
            mask = torch.ones(n, dtype=torch.bool)
            mask[chosen] = False
            idx = int(mask.nonzero()[0])
        else:
            idx = int(torch.multinomial(d2 / total, 1, generator=gen))
        chosen.append(idx)
        d2 = torch.minimum(d2, sq_distances(x, x[idx : idx + 1])[:, 0].cpu().double())
        d2[idx] = 0.0
    return torch.tensor(chosen, dtype=torch.long)


def lloyd_kmeans(
    x: torch.Tensor, k: int, gen: torch.Generator, init: str = "kmeans++", max_iter: int = 100, tol: float = 1e-6
) -> dict:
    """Vectorised Lloyd iterations on x's device. Returns labels (CPU long), centroids (CPU),
    iterations, converged, inertia. `tol` is relative: stop when no centroid moves by more than
    tol * RMS norm of the points (or when the assignment stops changing)."""
    n = x.shape[0]
    if init == "kmeans++":
        idx = kmeans_pp_init(x, k, gen)
    elif init == "random":
        idx = torch.randperm(n, generator=gen)[:k]
    else:
        raise ConfigError(f"Unknown partitioner.init '{init}'. Valid: kmeans++, random.")
    centroids = x[idx.to(x.device)].clone()
    scale = float(x.pow(2).sum(1).mean().sqrt()) or 1.0
    labels = None
    converged, it = False, 0
    for it in range(1, int(max_iter) + 1):
        new_labels = sq_distances(x, centroids).argmin(1)
        new_centroids, _ = member_means(x, new_labels, centroids)
        shift = float((new_centroids - centroids).norm(dim=1).max())
        same = labels is not None and bool((new_labels == labels).all())
        labels, centroids = new_labels, new_centroids
        if same or shift <= tol * scale:
            converged = True
            break
    return {
        "labels": labels.cpu(),
        "centroids": centroids.cpu(),
        "iterations": it,
        "converged": converged,
        "inertia": inertia(x, labels, centroids),
    }


class EmbeddingPartitioner(Partitioner):
    """User partitions computed by clustering user embeddings pretrained on train."""

    unit = "user"
    defaults = {"n_shards": 10, "embedding": DEFAULT_EMBEDDING}

    def __init__(self, cfg=None, **kw):
        super().__init__(cfg, **kw)
        emb = self.cfg.get("embedding")
        if not isinstance(emb, dict) or not emb.get("name"):
            raise ConfigError(
                "partitioner.embedding must be a sub-model config with a name, e.g. "
                "{name: bpr, epochs: 30, dim: 64, lr: 0.005}."
            )
        # a partial override (e.g. only epochs) keeps the other defaults of the same sub-model
        if emb["name"] == DEFAULT_EMBEDDING["name"]:
            emb = {**DEFAULT_EMBEDDING, **emb}
        self.cfg["embedding"] = dict(emb)

    def user_embeddings(self, train, n_users: int, n_items: int, seed: int) -> tuple[np.ndarray, torch.Tensor, Span]:
        """(present user ids, their embeddings as float64 on the runtime device, pretraining Span)."""
        users, _, seconds = pretrained_embeddings(
            train, n_users, n_items, self.cfg["embedding"], seed, self.runtime, self.cache_dir
        )
        present = np.flatnonzero(train.user_mask(n_users))
        x = users[torch.as_tensor(present)].to(self.runtime.device, torch.float64)
        return present, x, seconds

    def to_partition(self, train, n_users: int, present: np.ndarray, labels: np.ndarray, info: dict) -> Partition:
        unit_shard = np.full(n_users, -1, dtype=np.int64)
        unit_shard[present] = np.asarray(labels, dtype=np.int64)
        sizes = np.bincount(unit_shard[present], minlength=self.n_shards)
        info = {**info, "group_sizes": sizes.tolist(), "max_group": int(sizes.max()), "min_group": int(sizes.min())}
        return Partition(
            "user", self.n_shards, rows_from_units("user", train, unit_shard), unit_shard, uses_forget=True, info=info
        )


@PARTITIONERS.register("kmeans")
class KMeansPartition(EmbeddingPartitioner):
    """Lloyd k-means on the user embeddings (unbalanced groups; an empty cluster keeps its old
    centroid and can stay empty). Initialisation `kmeans++` or `random` distinct users, drawn from
    the partition seed's own generator."""

    defaults = {"n_shards": 10, "embedding": DEFAULT_EMBEDDING, "init": "kmeans++", "max_iter": 100, "tol": 1e-6}

    def __init__(self, cfg=None, **kw):
        super().__init__(cfg, **kw)
        if self.cfg["init"] not in ("kmeans++", "random"):
            raise ConfigError(f"Unknown partitioner.init '{self.cfg['init']}'. Valid: kmeans++, random.")
        if int(self.cfg["max_iter"]) < 1:
            raise ConfigError(f"partitioner.max_iter must be at least 1, got {self.cfg['max_iter']}.")

    def assign(self, train, n_users, n_items, seed):
        present, x, pretrain = self.user_embeddings(train, n_users, n_items, seed)
        self.runtime.sync()
        t0 = clock()
        out = lloyd_kmeans(
            x,
            self.n_shards,
            torch_generator(seed, "partition", "kmeans"),
            self.cfg["init"],
            int(self.cfg["max_iter"]),
            float(self.cfg["tol"]),
        )
        self.runtime.sync()
        cluster = clock() - t0
        info = {
            "pretrain": pretrain,
            "cluster": cluster,
            "pretrain_s": pretrain.wall,
            "cluster_s": cluster.wall,
            "iterations": out["iterations"],
            "converged": out["converged"],
            "inertia": out["inertia"],
        }
        return self.to_partition(train, n_users, present, out["labels"].numpy(), info)
