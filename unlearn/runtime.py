"""Where and how tensors are computed. Built inside the job, never in a launching process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import ConfigError


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
            if not torch.cuda.is_available():
                raise ConfigError("runtime=gpu asks for CUDA, but no CUDA device is visible to this job. Use runtime=cpu.")
            if "SLURM_JOB_ID" in os.environ or cfg.get("gpu_index") is not None:
                index = int(cfg.get("gpu_index") or 0)
            else:  # jobs of a local sweep spread over the visible GPUs
                index = job_index % torch.cuda.device_count()
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
