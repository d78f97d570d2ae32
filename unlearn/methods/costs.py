"""What fitting and unlearning cost: small records whose fields are the result record's efficiency
keys. Methods return them; the lifecycle writes them; nothing else reads time.

Every time is a `Span` (wall and process CPU seconds, `unlearn.metrics.timing`), written as
`<name>_s` and `<name>_cpu_s`. A plain number is taken as wall seconds whose CPU seconds are
unknown (a plugin method that times with its own clock): its `_cpu_s` is written as null."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..metrics.keys import KEYS
from ..metrics.timing import Span

BREAKDOWNS = ("partition_s", "pretrain_s", "shards_s", "aggregator_s")


def as_span(value) -> Span:
    return value if isinstance(value, Span) else Span(float(value), math.nan)


def span_keys(name: str, value) -> dict:
    span = as_span(value)
    return {f"{name}_s": float(span.wall), f"{name}_cpu_s": None if math.isnan(span.cpu) else float(span.cpu)}


def _numbers(prefix: str, extra: dict) -> dict:
    """`<prefix>.<key>` for the numbers of `extra`; a Span under `<name>_s` becomes both keys."""
    out = {}
    for k, v in extra.items():
        if isinstance(v, Span):
            out.update(span_keys(f"{prefix}.{k[:-2] if k.endswith('_s') else k}", v))
        elif isinstance(v, (int, float)):
            out[f"{prefix}.{k}"] = v
    return out


@dataclass
class FitCost:
    """`fit(data)`'s cost. `seconds` is `fit_s`; each breakdown that is not None becomes `fit.<name>`
    (`pretrain_s` counts what pretrained embeddings cost to train, also when a cache served them,
    so a record does not depend on which run came first). `epochs` is the epochs (or ALS sweeps) of
    a single-model fit, what the retrain oracle reports; None for an ensemble. `extra` holds
    method-specific numbers, written as `fit.<key>`."""

    seconds: Span | float
    partition_s: Span | float | None = None
    pretrain_s: Span | float | None = None
    shards_s: Span | float | None = None
    aggregator_s: Span | float | None = None
    epochs: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def one_model(cls, seconds: Span, epochs: int, extra: dict | None = None) -> "FitCost":
        """The fit of a single model (no partition, no aggregator): its seconds are the one shard's."""
        return cls(
            seconds=seconds,
            partition_s=Span(),
            pretrain_s=Span(),
            shards_s=seconds,
            aggregator_s=Span(),
            epochs=int(epochs),
            extra=extra or {},
        )

    @property
    def span(self) -> Span:
        return as_span(self.seconds)

    def record(self) -> dict:
        out = span_keys("fit", self.seconds)
        for name in BREAKDOWNS:
            value = getattr(self, name)
            if value is not None:
                out.update(span_keys(f"fit.{name[:-2]}", value))
        out.update(_numbers("fit", self.extra))
        return out


@dataclass
class UnlearnCost:
    """One request's `unlearn(rows)` cost. `seconds` is the request's unlearning time; breakdowns
    that are not None become `unlearn.<name>`, summed over requests, as do the numbers in `extra`.
    `shards_retrained` lists the shards retrained from scratch (empty for a method that fine-tunes).
    `epochs`: where unlearning is a from-scratch fit of a single model (retrain), its epochs."""

    seconds: Span | float
    shards_s: Span | float | None = None
    aggregator_s: Span | float | None = None
    partition_s: Span | float | None = None  # re-pretraining and re-partitioning (partition_refresh=rebuild)
    shards_retrained: list[int] = field(default_factory=list)
    epochs: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def span(self) -> Span:
        return as_span(self.seconds)

    @staticmethod
    def record(costs: list["UnlearnCost"]) -> dict:
        """The record's unlearning keys for a stream of requests (`deletion.rounds`)."""
        out: dict = {}
        for cost in costs:
            parts = {}
            for n in ("shards_s", "aggregator_s", "partition_s"):
                if getattr(cost, n) is not None:
                    parts.update(span_keys(f"unlearn.{n[:-2]}", getattr(cost, n)))
            for key, value in {**parts, **_numbers("unlearn", cost.extra)}.items():
                out[key] = (
                    None if value is None or out.get(key, 0) is None else out.get(key, 0) + value
                )  # ints stay ints
        touched = sorted({int(s) for c in costs for s in c.shards_retrained})
        per_request = np.array([c.span.wall for c in costs])
        total = sum((c.span for c in costs), Span())
        return {
            **span_keys("unlearn", total),
            "unlearn_s.per_request": per_request.tolist(),  # latency of each request of a stream
            "unlearn_s.p50": float(np.percentile(per_request, 50)),
            "unlearn_s.p95": float(np.percentile(per_request, 95)),
            **out,
            "shards_retrained": touched,
            "n_shards_retrained": len(touched),
        }


_EFF = {"group": "efficiency"}
for _name, _label in (
    ("fit", "fit"),
    ("unlearn", "unlearn"),
    ("fit.partition", "partition"),
    ("fit.pretrain", "pretraining"),
    ("fit.shards", "shards"),
    ("fit.aggregator", "aggregator"),
    ("unlearn.shards", "shards"),
    ("unlearn.aggregator", "aggregator"),
    ("unlearn.partition", "partition"),
):
    _stage = "unlearn" if _name.startswith("unlearn") else "fit"
    _sub = "" if _name in ("fit", "unlearn") else _stage
    KEYS.declare(
        f"{_name}_s",
        f"{_label} time" if not _sub else f"{_label}",
        sub=_sub,
        unit="s",
        better="lower",
        doc=f"wall seconds of {_name.replace('.', ' ')}",
        **_EFF,
    )
    KEYS.declare(
        f"{_name}_cpu_s",
        f"{_label} CPU" if not _sub else f"{_label} CPU",
        sub=_sub,
        unit="s",
        better="lower",
        doc=f"process CPU seconds of {_name.replace('.', ' ')} (all threads)",
        **_EFF,
    )
KEYS.declare(
    "unlearn_s.p50",
    "request p50",
    unit="s",
    better="lower",
    doc="median wall seconds of one request of the stream",
    **_EFF,
)
KEYS.declare(
    "unlearn_s.p95",
    "request p95",
    unit="s",
    better="lower",
    doc="95th percentile of one request's wall seconds",
    **_EFF,
)
KEYS.declare("n_shards_retrained", "shards retrained", doc="shards retrained from scratch over all requests", **_EFF)
KEYS.declare("shards_retrained", "shards retrained (ids)", **_EFF)
