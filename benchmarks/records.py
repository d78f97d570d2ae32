"""Run ids, result files and manifests."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from unlearn import io

# keys that do not change what a run computes: where files go, how it is launched, on what device
# (`presets` names where the sub-model's settings came from; the settings themselves are in the id)
IDENTITY_EXCLUDED = (
    "results_dir",
    "cache_dir",
    "force",
    "plugins",
    "runtime",
    "hydra",
    "experiment",
    "presets",
    "tracking",
)


def run_id(cfg: dict) -> str:
    return io.stable_hash({k: v for k, v in cfg.items() if k not in IDENTITY_EXCLUDED}, 12)


def run_dir(cfg: dict, rid: str) -> Path:
    return Path(cfg["results_dir"]) / "runs" / rid


def load_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git(*args: str) -> str:
    """Output of a git command in this repository ("" where git or the repository is missing)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def manifest(started_at: datetime, wall_s: float, device) -> dict:
    versions = {}
    for pkg in ("recunlearn", "torch", "numpy", "pandas", "hydra-core", "omegaconf", "pot"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    gpu = ""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        gpu = torch.cuda.get_device_name(device)
    return {
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "versions": versions,
        "cpu": f"{cpu_name()} x{os.cpu_count()}",
        "gpu": gpu,
        "started_at": started_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall_s,
        "python": platform.python_version(),
    }


from unlearn.metrics.keys import KEYS  # noqa: E402

# the runner's own keys: identity, provenance and the job's clock
_ID = {"group": "identity"}
KEYS.declare("run_id", "run", doc="hash of the run's configuration (launch keys aside)", **_ID)
KEYS.declare("status", "status", doc="ok, failed or refused", **_ID)
KEYS.declare("presets", "sub-model preset", doc="where the sub-model's settings came from", **_ID)
KEYS.declare("git_commit", "commit", **_ID)
KEYS.declare("cpu", "CPU", doc="processor model and logical cores", **_ID)
KEYS.declare("gpu", "GPU", **_ID)
KEYS.declare("started_at", "started", **_ID)
KEYS.declare("wall_s", "job time", unit="s", group="efficiency", doc="wall seconds of the whole job")
KEYS.declare("wall_cpu_s", "job CPU", unit="s", group="efficiency", doc="process CPU seconds of the whole job")
