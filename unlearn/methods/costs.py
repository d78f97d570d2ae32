"""What fitting and unlearning cost: small records whose fields are the result record's efficiency
keys (SPEC §5, §6). Methods return them; the lifecycle writes them; nothing else reads time."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _numbers(prefix: str, extra: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in extra.items() if isinstance(v, (int, float))}


@dataclass
class FitCost:
    """`fit(data)`'s cost. `seconds` is `fit_s`; each breakdown that is not None becomes `fit.<name>`
    (`pretrain_s` counts what pretrained embeddings cost to train, also when a cache served them,
    so a record does not depend on which run came first). `epochs` is the epochs (or ALS sweeps) of
    a single-model fit, what the retrain oracle reports; None for an ensemble. `extra` holds
    method-specific numbers, written as `fit.<key>`."""

    seconds: float
    partition_s: float | None = None
    pretrain_s: float | None = None
    shards_s: float | None = None
    aggregator_s: float | None = None
    epochs: int | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        out = {"fit_s": float(self.seconds)}
        for name in ("partition_s", "pretrain_s", "shards_s", "aggregator_s"):
            value = getattr(self, name)
            if value is not None:
                out[f"fit.{name}"] = float(value)
        out.update(_numbers("fit", self.extra))
        return out


@dataclass
class UnlearnCost:
    """One request's `unlearn(rows)` cost. `seconds` is the request's unlearning time; breakdowns
    that are not None become `unlearn.<name>`, summed over requests, as do the numbers in `extra`.
    `shards_retrained` lists the shards retrained from scratch (empty for a method that fine-tunes).
    `epochs`: where unlearning is a from-scratch fit of a single model (retrain), its epochs."""

    seconds: float
    shards_s: float | None = None
    aggregator_s: float | None = None
    partition_s: float | None = None   # re-pretraining and re-partitioning (partition_refresh=rebuild)
    shards_retrained: list[int] = field(default_factory=list)
    epochs: int | None = None
    extra: dict = field(default_factory=dict)

    @staticmethod
    def record(costs: list["UnlearnCost"]) -> dict:
        """The record's unlearning keys for a stream of requests (`deletion.rounds`)."""
        out: dict = {}
        for cost in costs:
            parts = {f"unlearn.{n}": getattr(cost, n) for n in ("shards_s", "aggregator_s", "partition_s")
                     if getattr(cost, n) is not None}
            for key, value in {**parts, **_numbers("unlearn", cost.extra)}.items():
                out[key] = out.get(key, 0) + value  # ints (counts) stay ints
        touched = sorted({int(s) for c in costs for s in c.shards_retrained})
        per_request = np.array([float(c.seconds) for c in costs])
        return {
            "unlearn_s": float(per_request.sum()),
            "unlearn_s.per_request": per_request.tolist(),  # latency of each request of a stream
            "unlearn_s.p50": float(np.percentile(per_request, 50)),
            "unlearn_s.p95": float(np.percentile(per_request, 95)),
            **out,
            "shards_retrained": touched,
            "n_shards_retrained": len(touched),
        }
