"""`ot`: UltraRE's balanced user clustering by optimal transport (Li et al., NeurIPS 2023).

Users' embeddings come from a model pretrained on train (`embedding`, cached and shared with
`kmeans` / `ubp`). K centroids start at K distinct random users (partition seed). Each
iteration solves the transport between the n users (mass 1/n each) and the K clusters (mass
`cluster_mass`: `uniform` -> 1/K each, or a list of K positive weights) on the squared
Euclidean cost (`ot.dist`):

- `solver: emd`: exact network simplex (`ot.emd`, `num_itermax` pivots at most; hitting the
  limit raises instead of returning a non-optimal plan);
- `solver: sinkhorn`: entropic transport with regulariser `reg` on the cost normalised by its
  maximum (so `reg` is scale-free), at most `sinkhorn_itermax` iterations. `sinkhorn_method:
  auto` runs the plain matrix-scaling iterations (`ot.sinkhorn`, fast) when reg >= 0.005, where
  exp(-cost / reg) >= exp(-200) cannot underflow, and the log-domain iterations
  (`ot.bregman.sinkhorn_log`, about 50x slower on ML-1M but stable for any `reg`) below that or
  whenever the plain plan is not finite; `sinkhorn`, `sinkhorn_log` or `sinkhorn_stabilized`
  force one.

Each user goes to the cluster receiving most of its mass (argmax of its transport row), the
centroids move to the means of their members, and the loop stops when no centroid moves by
more than `tol` times the RMS norm of the embeddings, or after `max_iter` iterations.

Balance. The exact plan is a vertex of the transport polytope, so it has at most n + K - 1
non-zeros: all users but at most K - 1 send their whole mass to one cluster; the others are
split. With n not divisible by K a split is unavoidable (a cluster must receive n/K users'
worth of mass), and an argmax of a split row can overfill a cluster. `rounding: capacity`
(the default for `emd`, via `rounding: auto`) therefore rounds the plan with capacities
cap_k = n * b_k rounded by largest remainder (ties to the lower cluster index), so
sum cap_k = n and, for uniform mass, the caps differ by at most one: every cluster first takes
the users whose argmax it is, best plan entries first (then lower cost, then lower user id),
up to its capacity; every remaining user (the split ones, in the order of their largest plan
entry) takes the cluster with room where its plan entry is largest, ties broken by the lower
cost. A user whose whole mass goes to one cluster keeps exactly its argmax, because a cluster
receives at most floor(n * b_k) <= cap_k whole users. With uniform mass the group sizes
therefore differ by at most one. `sinkhorn` keeps the plain argmax (`rounding: auto` ->
`argmax`; its plan is dense and only approximately balanced); `rounding: capacity` forces the
balanced rounding for it too.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..metrics.timing import clock
from ..registry import PARTITIONERS
from ..seeding import numpy_rng
from .kmeans import DEFAULT_EMBEDDING, EmbeddingPartitioner

SOLVERS = ("emd", "sinkhorn")
ROUNDINGS = ("auto", "argmax", "capacity")
SINKHORN_METHODS = ("auto", "sinkhorn", "sinkhorn_log", "sinkhorn_stabilized")


def _ot():
    try:
        import ot  # POT
    except ImportError as exc:  # pragma: no cover - pot is a dependency
        raise ConfigError("partitioner=ot needs the POT package (pip install pot).") from exc
    return ot


def capacities(mass: np.ndarray, n: int) -> np.ndarray:
    """Integer cluster sizes summing to n, proportional to `mass` (largest remainder, ties to
    the lower index)."""
    want = mass / mass.sum() * n
    caps = np.floor(want + 1e-9).astype(np.int64)
    rest = n - int(caps.sum())
    if rest > 0:
        order = np.lexsort((np.arange(len(mass)), -(want - caps)))
        caps[order[:rest]] += 1
    elif rest < 0:  # only from the 1e-9 guard; take back from the smallest remainders
        order = np.lexsort((np.arange(len(mass)), want - caps))
        caps[order[:-rest]] -= 1
    return caps


def capacity_rounding(plan: np.ndarray, cost: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Hard assignment from a transport plan with cluster k receiving exactly caps[k] users
    (sum(caps) must equal n). See the module docstring."""
    n, k = plan.shape
    labels = np.full(n, -1, dtype=np.int64)
    best = plan.argmax(1)
    top = plan[np.arange(n), best]
    # users grouped by their argmax, best entries first; a cluster takes up to caps[k] of them
    order = np.lexsort((np.arange(n), cost[np.arange(n), best], -top, best))
    sorted_best = best[order]
    starts = np.searchsorted(sorted_best, np.arange(k))
    rank = np.arange(n) - starts[sorted_best]
    accept = rank < caps[sorted_best]
    labels[order[accept]] = sorted_best[accept]
    room = caps - np.bincount(labels[labels >= 0], minlength=k)
    rest = np.flatnonzero(labels < 0)
    rest = rest[np.lexsort((rest, -top[rest]))]
    for u in rest:  # at most K - 1 split users for an exact (vertex) plan
        open_ = np.flatnonzero(room > 0)
        pick = open_[np.lexsort((open_, cost[u, open_], -plan[u, open_]))[0]]
        labels[u] = pick
        room[pick] -= 1
    return labels


def transport_plan(
    cost: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    solver: str,
    reg: float,
    num_itermax: int,
    sinkhorn_method: str = "auto",
    sinkhorn_itermax: int = 10_000,
) -> np.ndarray:
    ot = _ot()
    if solver == "emd":
        plan, log = ot.emd(a, b, cost, numItermax=int(num_itermax), log=True)
        if log.get("warning"):  # e.g. "numItermax reached before optimality": never pass silently
            raise ConfigError(f"ot.emd did not reach the optimum ({log['warning']}); raise partitioner.num_itermax.")
        return plan
    scale = float(cost.max()) or 1.0
    method = sinkhorn_method
    if method == "auto":
        method = "sinkhorn" if reg >= 0.005 else "sinkhorn_log"
    plan = ot.sinkhorn(a, b, cost / scale, float(reg), method=method, numItermax=int(sinkhorn_itermax), warn=False)
    if sinkhorn_method == "auto" and method != "sinkhorn_log" and not np.isfinite(plan).all():
        plan = ot.sinkhorn(
            a, b, cost / scale, float(reg), method="sinkhorn_log", numItermax=int(sinkhorn_itermax), warn=False
        )
    if not np.isfinite(plan).all():
        raise ConfigError(
            f"sinkhorn ({method}) gave a non-finite plan with reg={reg}; use a larger "
            "partitioner.reg or sinkhorn_method=sinkhorn_log."
        )
    return plan


def ot_clustering(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    solver: str = "emd",
    reg: float = 0.01,
    cluster_mass=None,
    max_iter: int = 30,
    tol: float = 1e-4,
    num_itermax: int = 1_000_000,
    rounding: str = "auto",
    sinkhorn_method: str = "auto",
    sinkhorn_itermax: int = 10_000,
) -> dict:
    """Cluster the rows of x (n x d) into k groups by the OT-Lloyd iterations described above.
    Returns labels, centroids, iterations, converged and inertia (sum of squared distances of the
    users to their final centroids)."""
    ot = _ot()
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    a = np.full(n, 1.0 / n)
    mass = np.full(k, 1.0 / k) if cluster_mass is None else np.asarray(cluster_mass, dtype=np.float64)
    b = mass / mass.sum()
    caps = capacities(b, n)
    if rounding == "auto":
        rounding = "capacity" if solver == "emd" else "argmax"
    centroids = x[rng.choice(n, size=k, replace=False)].copy()
    scale = float(np.sqrt((x * x).sum(1).mean())) or 1.0
    labels, converged, it = None, False, 0
    for it in range(1, int(max_iter) + 1):
        cost = ot.dist(x, centroids)  # squared Euclidean
        plan = transport_plan(cost, a, b, solver, reg, num_itermax, sinkhorn_method, sinkhorn_itermax)
        labels = capacity_rounding(plan, cost, caps) if rounding == "capacity" else plan.argmax(1)
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        counts = onehot.sum(0)
        # member means; an empty cluster keeps its centroid
        new = np.where(counts[:, None] > 0, (onehot.T @ x) / np.maximum(counts, 1)[:, None], centroids)
        shift = float(np.linalg.norm(new - centroids, axis=1).max())
        centroids = new
        if shift <= tol * scale:
            converged = True
            break
    return {
        "labels": labels,
        "centroids": centroids,
        "iterations": it,
        "converged": converged,
        "inertia": float(((x - centroids[labels]) ** 2).sum()),
    }


@PARTITIONERS.register("ot")
class OTPartition(EmbeddingPartitioner):
    """UltraRE's OT-based balanced clustering of users (see the module docstring)."""

    defaults = {
        "n_shards": 10,
        "embedding": DEFAULT_EMBEDDING,
        "solver": "emd",
        "reg": 0.01,
        "cluster_mass": "uniform",
        "max_iter": 30,
        "tol": 1e-4,
        "num_itermax": 1_000_000,
        "sinkhorn_itermax": 10_000,
        "rounding": "auto",
        "sinkhorn_method": "auto",
    }

    def __init__(self, cfg=None, **kw):
        super().__init__(cfg, **kw)
        _ot()  # import POT (seconds) when the method is built, outside the timed partition step
        c = self.cfg
        if c["solver"] not in SOLVERS:
            raise ConfigError(f"Unknown partitioner.solver '{c['solver']}'. Valid: {', '.join(SOLVERS)}.")
        if c["rounding"] not in ROUNDINGS:
            raise ConfigError(f"Unknown partitioner.rounding '{c['rounding']}'. Valid: {', '.join(ROUNDINGS)}.")
        if c["sinkhorn_method"] not in SINKHORN_METHODS:
            raise ConfigError(
                f"Unknown partitioner.sinkhorn_method '{c['sinkhorn_method']}'. Valid: {', '.join(SINKHORN_METHODS)}."
            )
        if c["solver"] == "sinkhorn" and not float(c["reg"]) > 0:
            raise ConfigError(f"partitioner.reg must be positive for solver=sinkhorn, got {c['reg']}.")
        if int(c["max_iter"]) < 1:
            raise ConfigError(f"partitioner.max_iter must be at least 1, got {c['max_iter']}.")
        self.mass = self._mass(c["cluster_mass"])

    def _mass(self, value):
        if value is None or value == "uniform":
            return None
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise ConfigError(
                f"partitioner.cluster_mass must be 'uniform' or a list of {self.n_shards} "
                f"positive numbers, got {value!r}."
            )
        mass = np.asarray(list(value), dtype=np.float64)
        if len(mass) != self.n_shards or not np.all(mass > 0):
            raise ConfigError(
                f"partitioner.cluster_mass must hold {self.n_shards} positive numbers "
                f"(one per shard), got {list(value)}."
            )
        return mass

    def assign(self, train, n_users, n_items, seed):
        present, x, pretrain = self.user_embeddings(train, n_users, n_items, seed)
        c = self.cfg
        t0 = clock()
        out = ot_clustering(
            x.cpu().numpy(),
            self.n_shards,
            numpy_rng(seed, "partition", "ot"),
            c["solver"],
            float(c["reg"]),
            self.mass,
            int(c["max_iter"]),
            float(c["tol"]),
            int(c["num_itermax"]),
            c["rounding"],
            c["sinkhorn_method"],
            int(c["sinkhorn_itermax"]),
        )
        cluster = clock() - t0
        info = {
            "pretrain": pretrain,
            "cluster": cluster,
            "pretrain_s": pretrain.wall,
            "cluster_s": cluster.wall,
            "iterations": out["iterations"],
            "converged": out["converged"],
            "inertia": out["inertia"],
            "solver": c["solver"],
        }
        return self.to_partition(train, n_users, present, out["labels"], info)
