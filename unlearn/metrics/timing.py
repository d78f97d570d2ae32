"""Clocks of the record: wall and process CPU seconds of every timed region, the timer floor, and
peak memory.

A `Span` is a pair (wall seconds, process CPU seconds). `clock()` reads both clocks at once, so a
region is `t0 = clock(); ...; spent = clock() - t0`, and spans add up like seconds do. Process CPU
seconds count every thread of the process: with several threads busy they exceed wall seconds, and
they move far less than wall seconds when other processes load the machine.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import torch

# the resolution below which a timed region counts as this long (a speedup never divides by 0)
TIMER_FLOOR_S = 1e-3


@dataclass(frozen=True)
class Span:
    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: "Span") -> "Span":
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __radd__(self, other):  # sum() starts from 0
        return self if other == 0 else NotImplemented

    def __sub__(self, other: "Span") -> "Span":
        return Span(self.wall - other.wall, self.cpu - other.cpu)

    def scaled(self, factor: float) -> "Span":
        return Span(self.wall * factor, self.cpu * factor)

    def keys(self, name: str) -> dict:
        """`{name}_s` and `{name}_cpu_s` (`fit.shards` -> `fit.shards_s`, `fit.shards_cpu_s`)."""
        return {f"{name}_s": float(self.wall), f"{name}_cpu_s": float(self.cpu)}

    @staticmethod
    def of(value) -> "Span":
        """A span from a span or from a stored {wall, cpu} pair."""
        if isinstance(value, Span):
            return value
        if isinstance(value, dict):
            return Span(float(value["wall"]), float(value["cpu"]))
        raise TypeError(f"not a span: {value!r}")


def clock() -> Span:
    """Now, on both clocks."""
    return Span(time.perf_counter(), time.process_time())


def timed(fn, *args, sync=None):
    """(fn(*args), its Span); `sync` (e.g. `Runtime.sync`) runs before both readings so queued GPU
    work lands in the region that queued it."""
    if sync:
        sync()
    t0 = clock()
    out = fn(*args)
    if sync:
        sync()
    return out, clock() - t0


def peak_memory(device: torch.device) -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    out = {"peak_rss_mb": float(rss_mb)}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


from .keys import KEYS  # noqa: E402

KEYS.declare(
    "peak_rss_mb",
    "peak memory",
    unit="MB",
    better="lower",
    group="efficiency",
    doc="the process's peak resident memory over the whole run",
)
KEYS.declare(
    "peak_gpu_mb",
    "peak GPU memory",
    unit="MB",
    better="lower",
    group="efficiency",
    doc="the peak of torch's allocated GPU memory over the whole run",
)
