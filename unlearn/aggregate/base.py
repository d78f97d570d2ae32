"""Aggregators: how the K shard models' scores become one score matrix."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ..data.interactions import TrainSet
from ..errors import ConfigError
from ..runtime import CPU, Runtime


class Aggregator(ABC):
    """Subclasses implement `score`; trainable ones also `fit`, `state_dict`, `load_state_dict`.

    A trainable aggregator reads all retained training rows, so unlearning refits it from its
    own seed. It must never move a shard's parameters (they are frozen: stop-gradient)."""

    registered_name = "aggregator"
    trainable = False
    requires_unit: tuple[str, ...] | None = None  # partition units it can serve
    single_shard = False
    defaults: dict = {}

    def __init__(self, cfg: dict | None = None, n_users: int = 0, n_items: int = 0, runtime: Runtime = CPU):
        self.cfg = {**self.defaults, **{k: v for k, v in (cfg or {}).items() if k != "name"}}
        self.n_users, self.n_items = n_users, n_items
        self.runtime = runtime
        self.partition = None

    def check(self, unit: str, n_shards: int) -> None:
        if self.single_shard and n_shards != 1:
            raise ConfigError(
                f"aggregator={self.registered_name} serves a single model, but the partition has "
                f"{n_shards} shards. Use aggregator=mean, own, attention or linear, or partitioner=none."
            )
        if self.requires_unit and unit not in self.requires_unit:
            raise ConfigError(
                f"aggregator={self.registered_name} needs a partition by {' or '.join(self.requires_unit)}; "
                f"the partitioner splits by {unit}."
            )

    def bind(self, shards: list, partition) -> None:
        """Attach to the shard models and the partition (no learning)."""
        self.partition = partition

    def fit(self, shards: list, partition, data: TrainSet, seed: int) -> dict:
        self.bind(shards, partition)
        return {}

    @abstractmethod
    def score(self, shards: list, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` over every item from the shard models."""

    def representation(self, shards: list, users: torch.Tensor) -> dict | None:
        """The final user representation a score is the dot product with, as {"": vectors} (more
        keys for other readings of it), or None when scores are not one user vector's dot products.
        For the completeness probe `forgotten_collapse`."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def shard_user_vectors(shards: list, users: torch.Tensor) -> list[torch.Tensor] | None:
    """Each shard model's user embeddings of `users` (None if a sub-model has none)."""
    try:
        return [m.embeddings()[0].to(users.device)[users] for m in shards]
    except NotImplementedError:
        return None


from ..metrics.keys import KEYS  # noqa: E402

# an aggregator's fit report, written by the sharded methods as `fit.aggregator.<key>`
KEYS.declare("aggregator", "aggregator", group="identity", doc="the aggregator's registered name")
KEYS.declare("fit.aggregator.epochs", "aggregator epochs", group="other", doc="epochs the aggregator trained")
KEYS.declare(
    "fit.aggregator.best_epoch", "aggregator best epoch", group="other", doc="the epoch whose state the aggregator kept"
)
KEYS.declare(
    "fit.aggregator.stopped_early",
    "aggregator stopped early",
    group="other",
    doc="1 where validation stopped the aggregator before its epoch cap",
)
KEYS.declare(
    "fit.aggregator.valid",
    "aggregator valid",
    better="higher",
    group="other",
    doc="the aggregator's best validation metric",
)
KEYS.declare(
    "fit.aggregator.seconds",
    "aggregator fit",
    unit="s",
    better="lower",
    group="efficiency",
    doc="wall seconds of the aggregator's own training loop",
)
KEYS.declare(
    "fit.aggregator.iterations", "aggregator iterations", group="other", doc="optimiser iterations of the aggregator"
)
KEYS.declare("fit.aggregator.pairs", "aggregator pairs", group="other", doc="training pairs of the aggregator")
KEYS.declare("fit.aggregator.loss", "aggregator loss", group="other", doc="the aggregator's final training loss")
KEYS.declare(
    "fit.aggregator.lr_final",
    "aggregator final lr",
    group="other",
    doc="the aggregator's learning rate when it stopped (after halvings)",
)
KEYS.declare(
    "aggregator_stop_reason", "aggregator stop reason", group="other", doc="why the aggregator's training ended"
)
KEYS.declare("aggregator.weight", "aggregator weights", group="other", doc="the learnt combination weights")
