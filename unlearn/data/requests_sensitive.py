"""`deletion.selection=sensitive`: users ask to forget the items of a sensitive genre they liked,
as ERASE builds its MovieLens forget sets.

The genre G (`deletion.genre`: a name, or a list of names whose union is G) comes from the items'
side files (`features.side_features`: ML-100K's u.item, ML-1M's movies.dat). A user qualifies with
at least one train row of an item of G rated at least `deletion.min_rating`; the qualifying users
are shuffled with the deletion seed and the first `count` x `rounds` of them (or the share `ratio`)
are chosen. A request is one chosen user's qualifying rows (`count` users per request, `rounds`
requests in turn); the user keeps every other row, so stays in the evaluation. Implicit data
(every row rated alike) has no rating to threshold: every row of G qualifies and the record's
`sensitive.min_rating` is null. Only train rows are drawn: validation and test stay as split.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..registry import REQUESTS
from ..seeding import numpy_rng
from .interactions import Dataset
from .request_kinds import check_unit, deletion_seed, n_rounds, user_request

DEFAULT_GENRE = "Horror"
DEFAULT_MIN_RATING = 4


def genre_items(data: Dataset, wanted) -> tuple[np.ndarray, list[str]]:
    """(boolean mask over items: the item is of genre G, the names G stands for)."""
    feats = data.info.get("features")
    feats = feats.get() if hasattr(feats, "get") else feats
    multi = None if feats is None else feats.item_multi.get("genre")
    names = None if feats is None else feats.names.get("genre")
    if multi is None or names is None:
        raise ConfigError(f"deletion.selection=sensitive needs item genres, and dataset {data.name} has none "
                          f"(genres come from ML-100K's u.item or ML-1M's movies.dat beside the data).")
    wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
    if not wanted:
        raise ConfigError(f"deletion.genre is empty; name one of: {', '.join(names)}.")
    column = {n.lower(): j for j, n in enumerate(names)}
    unknown = [str(g) for g in wanted if str(g).lower() not in column]
    if unknown:
        raise ConfigError(f"Unknown deletion.genre '{unknown[0]}' for dataset {data.name}. Valid: {', '.join(names)}.")
    cols = sorted({column[str(g).lower()] for g in wanted})
    return np.asarray(multi)[:, cols].sum(1) > 0, [names[j] for j in cols]


def _n_chosen(cfg: dict, n_candidates: int, rounds: int, what: str) -> int:
    count, ratio = cfg.get("count"), cfg.get("ratio")
    if count is not None:
        count = int(count)
        if count < 1 or count * rounds > n_candidates:
            raise ConfigError(f"deletion.count={count} users per request x deletion.rounds={rounds} must be between "
                              f"1 and the {n_candidates} {what}.")
        return count * rounds
    if ratio is None or not 0.0 < float(ratio) <= 1.0:
        raise ConfigError(f"deletion.ratio must lie in (0, 1] (a share of the {what}), got {ratio}.")
    n = max(1, int(round(float(ratio) * n_candidates)))
    if n < rounds:
        raise ConfigError(f"deletion.rounds={rounds} is more requests than the {n} chosen users "
                          f"(deletion.ratio={ratio} of the {what}).")
    return n


@REQUESTS.register("sensitive")
def sensitive_request(data: Dataset, cfg: dict, seed: int):
    unit = check_unit(cfg, "sensitive", "interaction")
    rounds = n_rounds(cfg)
    in_genre, names = genre_items(data, cfg.get("genre", DEFAULT_GENRE))
    train = data.train
    threshold = cfg.get("min_rating", DEFAULT_MIN_RATING)
    explicit = len(np.unique(train.ratings)) > 1
    effective = float(threshold) if threshold is not None and explicit else None
    rows = in_genre[train.items]
    if effective is not None:
        rows &= train.ratings >= effective
    label = "|".join(names)
    rated = f" rated at least {threshold:g}" if effective is not None else ""
    what = f"users with a train row of genre {label}{rated}"
    candidates = np.unique(train.users[rows])
    if len(candidates) == 0:
        raise ConfigError(f"No user of dataset {data.name} has a train row of genre {label}{rated}: "
                          f"there is nothing to draw for deletion.selection=sensitive.")
    n = _n_chosen(cfg, len(candidates), rounds, what)
    chosen = numpy_rng(deletion_seed(cfg, seed), "deletion", "sensitive", *names).permutation(candidates)[:n]
    context = {"sensitive": {"genre": label, "genre_items": in_genre, "min_rating": effective,
                             "users": np.sort(chosen), "candidates": int(len(candidates))}}
    request = user_request(train, data.n_users, unit, "sensitive", rows, chosen, rounds,
                           probes=("sensitive_exposure",), context=context)
    return data, request
