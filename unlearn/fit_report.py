"""What one fit reports: how many epochs (or sweeps) it ran, where it stopped and why, the
validation curve it selected on, and what the model adds of its own (`extra`). Sub-models and
aggregators return one from `fit`; records take `as_dict()`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# why a fit ended: training.EarlyStopping's four, ALS's two, and a shard loaded from a cache
STOP_REASONS = ("patience", "epoch_cap", "no_validation", "fixed_budget", "converged", "sweep_cap", "cached")


@dataclass
class FitReport:
    epochs: int = 0  # epochs (ALS: sweeps; an aggregator: its iterations) the fit ran
    stop_reason: str | None = None  # one of STOP_REASONS; None: nothing was trained
    best_epoch: int | None = None  # the epoch whose parameters were kept (None: the last)
    valid: float = float("nan")  # the kept epoch's validation metric (nan: none read)
    valid_curve: list = field(default_factory=list)  # [epoch, validation metric] of every evaluation
    stopped_early: bool = False  # patience ran out before the epoch cap
    selection: str | None = None  # best_valid | last (training.SELECTIONS)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)  # the model's own keys (ALS's objective, the aggregator's settings)

    @property
    def kept_epoch(self) -> int:
        """The epoch whose parameters the model holds."""
        return int(self.best_epoch or self.epochs)

    @classmethod
    def cached(cls) -> "FitReport":
        """The report of a model loaded from a cache: nothing was trained in this run."""
        return cls(stop_reason="cached")

    def as_dict(self) -> dict:
        """The fields and the extra keys, flat (extra keys never shadow a field)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **out}
