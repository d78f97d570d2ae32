"""A fingerprint of the code that trains models, for cache keys: an oracle or pretrained embeddings
cached by another version of the training code are never read back as if this code had made them."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
# what a fit depends on: data handling, seeding, sub-models, training loops, the sharded methods'
# fit (the retrain oracle is `retrain`), partitions and aggregators
TRAINING_CODE = (
    "data",
    "models",
    "partition",
    "aggregate",
    "training.py",
    "seeding.py",
    "runtime.py",
    "methods/base.py",
    "methods/shard_state.py",
    "methods/sisa.py",
    "methods/costs.py",
)


@lru_cache(maxsize=1)
def training_code_version() -> str:
    """Hash of the training code's source files and the torch version (its kernels' numerics)."""
    h = hashlib.sha256(torch.__version__.encode())
    for entry in TRAINING_CODE:
        path = ROOT / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
