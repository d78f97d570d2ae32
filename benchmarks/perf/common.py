"""What the performance benchmarks share: a dataset by its config name, one thread budget for
torch and BLAS, and the machine's load (timings on a shared machine say what else ran)."""

from __future__ import annotations

import os
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


def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(threads: int) -> dict:
    """Where a benchmark ran: CPU, cores, threads given to it, load, versions, commit, time."""
    from datetime import datetime, timezone

    import numpy as np

    from benchmarks.records import cpu_name, git

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "n_cpus": os.cpu_count(),
        "threads": int(threads),
        "gpu": gpu,
        "load": load_avg(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "git_commit": git("rev-parse", "--short", "HEAD") or None,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def append_record(out: Path, name: str, record: dict, threads: int) -> Path:
    """Append `record` (figures and ratios), with the machine it ran on, to <out>/<name>.jsonl:
    the history `python -m benchmarks.perf.summary` reads the latest entry of."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps({"benchmark": name, **record, "machine": machine(threads)}) + "\n")
    return path


def publish(out: Path, name: str, record: dict, threads: int, markdown: str) -> None:
    """Append the record to <out>/<name>.jsonl, write <out>/<name>.md and print it."""
    append_record(out, name, record, threads)
    (Path(out) / f"{name}.md").write_text(markdown)
    print(markdown)
