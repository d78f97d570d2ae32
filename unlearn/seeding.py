"""One RNG stream per (seed, component, shard id): never a shared global RNG.

A shard retrained during unlearning draws exactly the numbers it drew at fit time, so an
untouched shard is bit-identical and a touched one equals the exact replica.

`stream_uniforms` is a counter-based generator (splitmix64 of a key, an id and a draw counter):
every (key, id) has its own stream, whatever other ids are drawn with it, and many ids draw at
once without a loop (EEMU's per-(user, shard) adaptation sets).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *parts: object) -> int:
    key = "/".join([str(int(seed))] + [str(p) for p in parts]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def numpy_rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *parts))


def torch_generator(seed: int, *parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *parts))
    return g


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def stream_uniforms(key: int, ids: np.ndarray, n: int, salt: int) -> np.ndarray:
    """(len(ids), n) uniforms in [0, 1): draws 0..n-1 of stream (key, id), `salt` separating
    uses of one stream. A row depends only on (key, id, salt, n), not on the other ids."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(key & 0x7FFFFFFFFFFFFFFF) ^ _mix(np.asarray(ids).astype(np.uint64)))
        x = _mix(base[:, None] + np.uint64(salt) * np.uint64(0x100000001B3) + np.arange(n, dtype=np.uint64)[None, :])
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
