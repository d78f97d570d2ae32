"""A synthetic implicit-feedback dataset: latent-factor users and items, power-law popularity.

Nothing is read from disk; the sizes and the seed come from the config, so tests and smoke runs
have data with real collaborative structure (a trained model beats popularity on it)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..seeding import numpy_rng

DEFAULTS = {
    "n_users": 300,
    "n_items": 200,
    "dim": 8,
    "mean_per_user": 25,
    "popularity_exponent": 1.0,
    "temperature": 0.5,
    "seed": 0,
}


def generate(cfg: dict) -> pd.DataFrame:
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    rng = numpy_rng(int(c["seed"]), "synthetic")
    n_users, n_items, dim = int(c["n_users"]), int(c["n_items"]), int(c["dim"])
    users = rng.normal(size=(n_users, dim)) / np.sqrt(dim)
    items = rng.normal(size=(n_items, dim)) / np.sqrt(dim)
    popularity = 1.0 / np.arange(1, n_items + 1) ** float(c["popularity_exponent"])
    popularity = popularity[rng.permutation(n_items)]
    logits = users @ items.T / float(c["temperature"]) + np.log(popularity)[None, :]
    counts = np.clip(rng.lognormal(np.log(float(c["mean_per_user"])), 0.6, n_users).astype(int), 3, n_items // 2)
    rows_u, rows_i = [], []
    for u in range(n_users):  # Gumbel top-k: sampling without replacement, proportional to exp(logits)
        keys = logits[u] + rng.gumbel(size=n_items)
        chosen = np.argpartition(-keys, counts[u])[: counts[u]]
        rows_u.append(np.full(counts[u], u))
        rows_i.append(chosen)
    u = np.concatenate(rows_u)
    i = np.concatenate(rows_i)
    ratings = np.clip(np.round(3 + 2 * np.tanh((users[u] * items[i]).sum(1) * 3) + rng.normal(0, 0.5, len(u))), 1, 5)
    ts = rng.integers(0, 10**6, len(u))
    return pd.DataFrame({"user": u, "item": i, "rating": ratings.astype(np.float32), "ts": ts})
