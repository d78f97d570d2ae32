"""`deletion.selection=spam`: fake users injected into train after the split and before the fit (a
shilling attack, as ERASE's spam sessions), then asked to be forgotten: F is every fake row.

The fake users number `fake_ratio` of the real users with a train row (or `fake_count`); their ids
follow the real ones (n_users grows, so every method and sub-model sees one id universe), they
hold no validation or test rows, and their side features are "unknown" (raw id -1). Each profile
holds `profile_len` fillers (null: the median real profile length), drawn without replacement from
the `popular_share` most popular items, plus `targets_per_profile` of the `targets` target items
(null: every target), drawn once from the `unpopular_share` least popular items. Popularity counts
train rows; items without one are no candidates, ties fall in a seeded order. Fake rows carry the
highest train rating and the last train timestamp. Everything draws from the deletion seed, and
the injected rows enter `split_hash`, so an oracle of the clean data is never reused.

F is one request (`rounds: 1`), `rounds` requests of consecutive fake users, or one request per fake
user (`rounds: null`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import io
from ..errors import ConfigError
from ..registry import REQUESTS
from ..seeding import numpy_rng
from .features import LazyFeatures
from .interactions import Dataset, Interactions
from .request_kinds import check_unit, deletion_seed, n_rounds, user_request

DEFAULTS = {"fake_ratio": 0.01, "fake_count": None, "targets": 10, "targets_per_profile": None,
            "profile_len": None, "popular_share": 0.2, "unpopular_share": 0.2}


@dataclass
class Injection:
    """What was injected: the fake users (ids n_real_users..), the target items, the profile size."""

    n_real_users: int        # the id universe before the injection
    n_real_rows: int         # train rows before the injection (fake rows follow them)
    fake_users: np.ndarray
    targets: np.ndarray
    profile_len: int         # fillers per profile
    targets_per_profile: int


def _share(cfg: dict, key: str) -> float:
    value = float(cfg.get(key, DEFAULTS[key]))
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"deletion.{key} must lie in (0, 1], got {value}.")
    return value


def _count(cfg: dict, key: str) -> int | None:
    value = cfg.get(key, DEFAULTS[key])
    if value is None:
        return None
    if int(value) < 1:
        raise ConfigError(f"deletion.{key} must be at least 1 (or null), got {value}.")
    return int(value)


def inject(data: Dataset, cfg: dict, seed: int) -> tuple[Dataset, Injection]:
    """`data` with the fake users' rows appended to train (real row indices unchanged)."""
    train, n_users = data.train, data.n_users
    real_counts = train.user_counts(n_users)
    n_real = int((real_counts > 0).sum())
    fake_count = _count(cfg, "fake_count")
    n_fake = fake_count if fake_count is not None else max(1, int(round(_share(cfg, "fake_ratio") * n_real)))
    if n_fake > n_real:
        raise ConfigError(f"{n_fake} fake users are more than the settings allow: at most the {n_real} real users "
                          f"of {data.name}'s train (deletion.fake_count / deletion.fake_ratio at most 1).")
    popular_share, unpopular_share = _share(cfg, "popular_share"), _share(cfg, "unpopular_share")
    if popular_share + unpopular_share > 1.0:
        raise ConfigError(f"deletion.popular_share + deletion.unpopular_share must be at most 1 (fillers and "
                          f"targets from disjoint items), got {popular_share} + {unpopular_share}.")
    counts = train.item_counts(data.n_items)
    present = np.flatnonzero(counts > 0)
    ties = numpy_rng(seed, "deletion", "spam", "ties").permutation(len(present))
    by_popularity = present[np.lexsort((ties, -counts[present]))]  # most popular first
    popular = by_popularity[: int(popular_share * len(present))]
    unpopular = by_popularity[len(present) - int(unpopular_share * len(present)):]
    n_targets = _count(cfg, "targets")
    if n_targets is None:
        raise ConfigError("deletion.targets must be a number of target items, not null.")
    if n_targets > len(unpopular):
        raise ConfigError(f"deletion.targets={n_targets} is more target items than the {len(unpopular)} least popular "
                          f"items (deletion.unpopular_share={unpopular_share}) hold.")
    per_profile = _count(cfg, "targets_per_profile") or n_targets
    if per_profile > n_targets:
        raise ConfigError(f"deletion.targets_per_profile={per_profile} is more than deletion.targets={n_targets}.")
    profile_len = _count(cfg, "profile_len")
    if profile_len is None:
        profile_len = max(1, int(round(float(np.median(real_counts[real_counts > 0])))))
    if profile_len > len(popular):
        raise ConfigError(f"A profile of {profile_len} fillers needs as many popular items; the most popular "
                          f"{popular_share} of items are {len(popular)} "
                          f"(deletion.profile_len, deletion.popular_share).")
    targets = np.sort(numpy_rng(seed, "deletion", "spam", "targets").choice(unpopular, n_targets, replace=False))
    rng = numpy_rng(seed, "deletion", "spam", "profiles")
    fake_users = np.arange(n_users, n_users + n_fake, dtype=np.int64)
    items = []
    for _ in fake_users:
        fillers = rng.choice(popular, profile_len, replace=False)
        chosen = targets if per_profile == n_targets else rng.choice(targets, per_profile, replace=False)
        items.append(np.concatenate([fillers, chosen]))
    size = profile_len + per_profile
    ts = None if train.timestamps is None else np.full(n_fake * size, train.timestamps.max(), dtype=np.int64)
    fake = Interactions(np.repeat(fake_users, size), np.concatenate(items),
                        np.full(n_fake * size, train.ratings.max(), dtype=np.float32), ts)
    info = dict(data.info)
    user_map = np.asarray(info.get("user_map", np.arange(n_users)))
    info["user_map"] = np.concatenate([user_map, np.full(n_fake, -1).astype(user_map.dtype)])
    features = info.get("features")
    if isinstance(features, LazyFeatures):  # fake ids match no side-file row: "unknown" features
        info["features"] = LazyFeatures(features.name, features.folder, info["user_map"], features.item_map)
    split_hash = io.stable_hash({"split": data.split_hash, "injected": fake.content_hash(),
                                 "n_users": n_users + n_fake}, 16)
    injected = Dataset(data.name, n_users + n_fake, data.n_items, Interactions.concat([train, fake]), data.valid,
                       data.test, split_hash=split_hash, info=info)
    return injected, Injection(n_users, len(train), fake_users, targets, profile_len, per_profile)


@REQUESTS.register("spam")
def spam_request(data: Dataset, cfg: dict, seed: int):
    unit = check_unit(cfg, "spam", "user")
    if cfg.get("count") is not None or cfg.get("ratio") is not None:
        raise ConfigError("deletion.selection=spam forgets every fake user: size the attack with deletion.fake_ratio "
                          "or deletion.fake_count, and leave deletion.count and deletion.ratio null.")
    injected, spam = inject(data, cfg, deletion_seed(cfg, seed))
    n_fake = len(spam.fake_users)
    rounds = n_rounds(cfg) or n_fake
    if rounds > n_fake:
        raise ConfigError(f"deletion.rounds={rounds} is more requests than the {n_fake} fake users "
                          f"(null: one request per fake user).")
    rows = np.zeros(len(injected.train), dtype=bool)
    rows[spam.n_real_rows:] = True
    context = {"spam": spam, "mia_reason": "fake users have no held-out rows: nothing to tell members from"}
    request = user_request(injected.train, injected.n_users, unit, "spam", rows, spam.fake_users, rounds,
                           probes=("spam_promotion",), context=context)
    return injected, request
