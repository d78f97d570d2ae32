"""Bootstrap intervals over users: means of per-user values under resamples of the users (paired
across rows), and the percentile interval of the replicates."""

from __future__ import annotations

import numpy as np
import torch


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator, max_cells: int = 1 << 18) -> np.ndarray:
    """Means of each row of `values` (rows: quantities, columns: users) over `n_boot` resamples of
    the columns with replacement, every row under the same resample (paired, when the rows are
    per-user differences between two models): a (rows x n_boot) array. A resample is a vector of
    per-user counts (a bincount of n draws), so a chunk of resamples is one matrix product; chunks
    of at most `max_cells` counts stay in cache and bound the memory on large user sets."""
    values = np.ascontiguousarray(np.atleast_2d(values), dtype=np.float64)
    n = values.shape[1]
    out = np.full((values.shape[0], n_boot), np.nan)
    if n == 0:
        return out
    rows = torch.from_numpy(values)  # torch's product keeps to the run's thread count (numpy's BLAS does not)
    step = max(1, max_cells // n)
    index = np.int32 if step * n < 2**31 else np.int64
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        draws = rng.integers(0, n, (b, n), dtype=index)
        draws += (np.arange(b, dtype=index) * n)[:, None]  # resample r counts in cells [r n, (r + 1) n)
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[:, start : start + b] = (rows @ torch.from_numpy(counts).T).numpy() / n
    return out


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> np.ndarray:
    """[low, high] percentile interval of each row of bootstrap `replicates`: a (rows x 2) array."""
    tail = (1.0 - level) / 2.0
    return np.quantile(np.atleast_2d(replicates), [tail, 1.0 - tail], axis=1).T
