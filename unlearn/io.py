"""Atomic writes: a killed job never leaves a half-written record or cache entry."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def stable_hash(obj, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def write_json(path, obj) -> None:
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True, default=_jsonable).encode()))


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def write_npz(path, arrays: dict) -> None:
    _atomic(path, lambda f: np.savez(f, **arrays))


def read_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:  # never unpickle cache files
        return {k: z[k] for k in z.files}


def write_tensors(path, tensors: dict) -> None:
    _atomic(path, lambda f: torch.save(tensors, f))


def read_tensors(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no pickled code
