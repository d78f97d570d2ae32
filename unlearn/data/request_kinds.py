"""Kinds of deletion request (`deletion.selection`), each registered in `REQUESTS`: a kind takes the
loaded dataset, the deletion config and the run's seed and returns the dataset the run trains on
with the forget set F drawn from it, or raises a `ConfigError` (before anything is trained).

`random`, `core` and `edge` draw from train as it is (`deletion.draw`); `sensitive`
(`requests_sensitive`) reads the items' genres; `spam` (`injection`) first adds fake users.
The helpers below are what the kinds share: the deletion seed, the unit check, the number of
requests, and a request made of chosen users' qualifying rows."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..registry import REQUESTS
from .deletion import SELECTIONS, DeletionRequest, assemble, draw
from .interactions import Dataset, Interactions


def prepare_request(data: Dataset, cfg: dict, seed: int) -> tuple[Dataset, DeletionRequest]:
    """(the dataset the run trains on, the forget set drawn from it) for `cfg` (deletion.*)."""
    return REQUESTS.get(str(cfg.get("selection", "random")))(data, cfg, seed)


def _from_train(data: Dataset, cfg: dict, seed: int) -> tuple[Dataset, DeletionRequest]:
    return data, draw(data.train, data.n_users, data.n_items, cfg, seed)


for _name in SELECTIONS:
    REQUESTS.register(_name)(_from_train)


def deletion_seed(cfg: dict, seed: int) -> int:
    """`deletion.seed`, else the run's seed."""
    return int(cfg["seed"]) if cfg.get("seed") is not None else int(seed)


def check_unit(cfg: dict, kind: str, unit: str) -> str:
    """A kind deletes one unit; another `deletion.unit` is refused."""
    got = cfg.get("unit", unit)
    if got != unit:
        raise ConfigError(f"deletion.selection={kind} deletes {unit}s: set deletion.unit={unit}, not {got}.")
    return unit


def n_rounds(cfg: dict, default: int | None = 1) -> int | None:
    """`deletion.rounds` as a positive int (None where the kind allows null and it is null)."""
    rounds = cfg.get("rounds", default)
    if rounds is None:
        return None
    rounds = int(rounds)
    if rounds < 1:
        raise ConfigError(f"deletion.rounds must be at least 1, got {rounds}.")
    return rounds


def user_request(train: Interactions, n_users: int, unit: str, selection: str, rows: np.ndarray,
                 chosen: np.ndarray, rounds: int, **extra) -> DeletionRequest:
    """A request of `rounds` parts, part r holding the rows (a boolean mask over train, `rows`) of
    the r-th slice of the chosen users, in their order."""
    chosen = np.asarray(chosen, dtype=np.int64)
    order = np.full(n_users, -1, dtype=np.int64)
    for r, part in enumerate(np.array_split(chosen, rounds)):
        order[part] = r
    row_round = np.where(rows, order[train.users], -1)
    row_rounds = [np.flatnonzero(row_round == r) for r in range(rounds)]
    if any(len(r) == 0 for r in row_rounds):
        raise ConfigError(f"deletion.rounds={rounds} is more requests than the {len(chosen)} chosen users fill.")
    return assemble(train, n_users, unit, selection, row_rounds, chosen, **extra)
