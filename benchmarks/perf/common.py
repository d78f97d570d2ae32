"""What the performance benchmarks load: a dataset by its config name, the pretrained embeddings a
partitioner reads, and one thread budget for torch and BLAS (timing and publishing: harness.py)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]


def load_named_dataset(name: str, cache_dir: str | None):
    """The dataset of conf/dataset/<name>.yaml, loaded (and cached) as the runner does."""
    from unlearn.data.load import load_dataset

    path = ROOT / "conf" / "dataset" / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise SystemExit(f"error: unknown dataset '{name}'. Valid datasets: {names}.")
    return load_dataset(yaml.safe_load(path.read_text()), cache_dir)


def partition_embeddings(dataset: str, results_dir: Path, run_seed: int, embedding: dict):
    """(data, user embeddings, item embeddings, pretrain seconds, cache dir, partition seed): the
    pretrained embeddings a run of seed `run_seed` partitions with, from (or into) the run cache."""
    from unlearn.partition.pretrain import pretrained_embeddings
    from unlearn.runtime import CPU
    from unlearn.seeding import derive_seed

    cache = str(Path(results_dir) / "cache")
    data = load_named_dataset(dataset, cache)
    seed = derive_seed(run_seed, "partition")  # what ShardedMethod hands its partitioner
    users, items, seconds = pretrained_embeddings(data.train, data.n_users, data.n_items, embedding, seed, CPU, cache)
    return data, users, items, seconds.wall, cache, seed  # wall seconds of the pretraining


def limit_threads(n: int) -> None:
    """torch and numpy's BLAS both get `n` threads."""
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
