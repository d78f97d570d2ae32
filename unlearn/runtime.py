"""Where and how tensors are computed. Built inside the job, never in a launching process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import ConfigError


def _ids(value: str | None) -> list[int]:
    try:
        return [int(v) for v in (value or "").split(",") if v.strip()]
    except ValueError:  # GPU UUIDs or names: not indices
        return []


def pick_gpu(job_index: int, count: int, env, requested=None) -> int:
    """The CUDA index a job uses, among the `count` GPUs it sees.

    An explicit `runtime.gpu_index` wins. A job that submitit submitted to SLURM takes the first GPU
    the scheduler gave it: the scheduler sets CUDA_VISIBLE_DEVICES to its allocation, so index 0;
    where a cluster leaves every GPU visible, the first of SLURM_STEP_GPUS / SLURM_JOB_GPUS. Any
    other SLURM job without CUDA_VISIBLE_DEVICES takes 0. Jobs of a local sweep (joblib,
    submitit_local, also inside an allocation whose GPUs are visible) spread over the visible GPUs:
    job number modulo their count."""
    if requested is not None:
        index = int(requested)
    elif "SLURM_JOB_ID" in env and "CUDA_VISIBLE_DEVICES" not in env:
        allocated = (
            _ids(env.get("SLURM_STEP_GPUS")) or _ids(env.get("SLURM_JOB_GPUS")) or _ids(env.get("GPU_DEVICE_ORDINAL"))
        )
        index = allocated[0] if allocated else 0
    elif "SLURM_JOB_ID" in env and env.get("SUBMITIT_EXECUTOR") == "slurm":
        index = 0
    else:
        index = job_index % max(count, 1)
    if not 0 <= index < count:
        raise ConfigError(
            f"GPU index {index} is not among the {count} CUDA device(s) this job sees "
            f"(CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', 'unset')})."
        )
    return index


@dataclass
class Runtime:
    device: torch.device
    eval_batch: int = 1024
    deterministic: bool = True
    progress: bool = False

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    @staticmethod
    def from_config(cfg: dict, job_index: int = 0) -> "Runtime":
        kind = cfg.get("device", "cpu")
        if kind == "cpu":
            device = torch.device("cpu")
        elif kind in ("cuda", "gpu"):
            if not torch.cuda.is_available() and torch.version.cuda is None:
                raise ConfigError(
                    f"runtime=gpu needs a CUDA build of torch; this one (torch {torch.__version__}) is "
                    f"CPU-only. Install one: make install TORCH=torch==<version>+cu<tag> "
                    f"TORCH_INDEX=https://download.pytorch.org/whl/cu<tag>."
                )
            if not torch.cuda.is_available():
                raise ConfigError(
                    "runtime=gpu asks for CUDA, but no CUDA device is visible to this job. Use runtime=cpu."
                )
            index = pick_gpu(job_index, torch.cuda.device_count(), os.environ, cfg.get("gpu_index"))
            device = torch.device("cuda", index)
            torch.cuda.set_device(device)
        else:
            raise ConfigError(f"Unknown runtime.device '{kind}'. Valid: cpu, cuda.")
        threads = cfg.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        deterministic = bool(cfg.get("deterministic", True))
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        return Runtime(device, int(cfg.get("eval_batch", 1024)), deterministic, bool(cfg.get("progress", False)))


CPU = Runtime(torch.device("cpu"))
