"""Deletion requests: which training rows a user asks to forget, and in what order."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..seeding import numpy_rng
from .interactions import Interactions
from .units import UNITS

SELECTIONS = ("random", "core", "edge")


@dataclass
class DeletionRequest:
    unit: str
    selection: str
    rows: np.ndarray            # train row indices, sorted
    rounds: list[np.ndarray]    # one array of rows per sequential request
    units: np.ndarray           # the selected users / items / rows
    n_forget_users: int
    deleted_users: np.ndarray   # users whose every train row is forgotten (they leave the system)
    probes: tuple = ()          # probes (unlearn.registry.PROBES) this kind of request is read with
    context: dict = field(default_factory=dict)  # what those probes read (a kind's genre, its targets)

    @property
    def n_forget(self) -> int:
        return len(self.rows)

    def content_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.rows).tobytes()).hexdigest()[:16]


def _check(cfg: dict) -> tuple[str, str, int]:
    unit, selection = cfg.get("unit", "user"), cfg.get("selection", "random")
    if unit not in UNITS:
        raise ConfigError(f"Unknown deletion.unit '{unit}'. Valid: {', '.join(UNITS)}.")
    if selection not in SELECTIONS:
        raise ConfigError(f"Unknown deletion.selection '{selection}'. Valid: {', '.join(SELECTIONS)}.")
    rounds = int(cfg.get("rounds", 1))
    if rounds < 1:
        raise ConfigError(f"deletion.rounds must be at least 1, got {rounds}.")
    return unit, selection, rounds


def _n_selected(cfg: dict, n_units: int, unit: str, rounds: int) -> int:
    """Units in F: `count` per request (so `count=1, rounds=N` is a stream of N single-unit
    requests), or the fraction `ratio` of all units, split over the requests."""
    count, ratio = cfg.get("count"), cfg.get("ratio")
    if count is not None:
        count = int(count)
        if count < 1 or count * rounds > n_units:
            raise ConfigError(f"deletion.count={count} must be between 1 and the number of {unit}s in train "
                              f"({n_units}) divided by deletion.rounds={rounds} (count is per request).")
        return count * rounds
    if ratio is None or not 0.0 < float(ratio) < 1.0:
        raise ConfigError(f"deletion.ratio must lie in (0, 1), got {ratio}.")
    return max(1, int(round(float(ratio) * n_units)))


def draw(train: Interactions, n_users: int, n_items: int, cfg: dict, seed: int) -> DeletionRequest:
    """Draw the forget set F from train only. `core` takes the most active units first, `edge`
    the least active (activity = training rows; for interactions, their user's), ties random."""
    unit, selection, rounds = _check(cfg)
    rng = numpy_rng(int(cfg.get("seed") if cfg.get("seed") is not None else seed), "deletion", unit, selection)
    if unit == "user":
        activity = train.user_counts(n_users)
        candidates = np.flatnonzero(activity > 0)
    elif unit == "item":
        activity = train.item_counts(n_items)
        candidates = np.flatnonzero(activity > 0)
    else:
        activity = train.user_counts(n_users)[train.users]
        candidates = np.arange(len(train))
    n = _n_selected(cfg, len(candidates), unit, rounds)
    if n > len(candidates):
        raise ConfigError(f"The forget set ({n} {unit}s) is larger than train ({len(candidates)} {unit}s).")
    if selection == "random":
        chosen = rng.permutation(candidates)[:n]
    else:
        tiebreak = rng.permutation(len(candidates))
        sign = -1 if selection == "core" else 1
        chosen = candidates[np.lexsort((tiebreak, sign * activity[candidates]))][:n]
    ids = train.users if unit == "user" else train.items if unit == "item" else None
    if ids is None:
        row_rounds = [np.sort(part) for part in np.array_split(chosen, rounds)]
    else:
        size = n_users if unit == "user" else n_items
        order = np.full(size, -1, dtype=np.int64)
        for r, part in enumerate(np.array_split(chosen, rounds)):
            order[part] = r
        row_round = order[ids]
        row_rounds = [np.flatnonzero(row_round == r) for r in range(rounds)]
    if any(len(r) == 0 for r in row_rounds):
        raise ConfigError(f"deletion.rounds={rounds} is more than the {n} selected {unit}s can fill.")
    return assemble(train, n_users, unit, selection, row_rounds, chosen)


def assemble(train: Interactions, n_users: int, unit: str, selection: str, row_rounds: list[np.ndarray],
             chosen: np.ndarray, **extra) -> DeletionRequest:
    """The request whose parts are `row_rounds` (train row indices, none empty): F is their union,
    which may not be all of train; the users who lose every row leave the system."""
    rows = np.sort(np.concatenate(row_rounds))
    if len(rows) >= len(train):
        raise ConfigError(f"The forget set ({len(rows)} rows) would remove all of train ({len(train)} rows).")
    forget_counts = np.bincount(train.users[rows], minlength=n_users)
    deleted = np.flatnonzero((forget_counts > 0) & (forget_counts == train.user_counts(n_users)))
    return DeletionRequest(unit, selection, rows, row_rounds, np.sort(np.asarray(chosen)),
                           int((forget_counts > 0).sum()), deleted, **extra)


from ..metrics.keys import KEYS  # noqa: E402

# identity of a deletion request
_ID = {"group": "identity"}
KEYS.declare("deletion.unit", "deletion unit", doc="what a request deletes: interactions, users or items", **_ID)
KEYS.declare("deletion.selection", "selection", doc="how F is chosen: random, core, edge", **_ID)
KEYS.declare("deletion.ratio", "deletion ratio", doc="share of the units deleted (when no count is set)", **_ID)
KEYS.declare("deletion.count", "deleted", doc="units deleted (when set, instead of a ratio)", **_ID)
KEYS.declare("deletion.rounds", "requests", doc="requests F is split into, unlearned in turn", **_ID)
KEYS.declare("n_forget", "forget rows", doc="training rows in F", **_ID)
KEYS.declare("n_forget_users", "forget users", doc="users with rows in F", **_ID)
