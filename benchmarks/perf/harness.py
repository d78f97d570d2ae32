"""One harness for the side-by-side performance benchmarks: contenders, one interleaved timer and
one publish function, so that each benchmark states only what it compares.

A contender is a named thing with a set-up (run once, timed apart), a step (what is timed) and a
score (what is compared for agreement or quality, read after the timing). The timer calls the
contenders' steps alternately, repeat by repeat, so that load from other processes on a shared
machine hits every contender alike; warm-up calls run before, outside the timed region; medians,
spreads and ratios come from the repeats of the same run. `publish` appends a record, with the
machine it ran on, to <out>/<name>.jsonl: the history `python -m benchmarks.perf.summary` reads.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch


@dataclass
class Contender:
    """`setup()` builds the contender's state once; `step(state)` is what is timed, its output kept
    for `score(state, output)`. `clock(output)`, where given, reads the seconds the step measured
    itself (e.g. a partitioner's clustering seconds, without the cached embeddings it loads)
    instead of the wall time around the call."""

    name: str
    step: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None
    score: Callable[[Any, Any], Any] | None = None
    clock: Callable[[Any], float] | None = None


class Timer:
    """Times contenders side by side: `set_up()` once each (seconds in `setup_s`), then `run()`
    calls their steps interleaved, repeat by repeat (seconds in `times`, last outputs in `last`)."""

    def __init__(self, contenders: Iterable[Contender]):
        self.contenders = list(contenders)
        names = [c.name for c in self.contenders]
        if len(set(names)) != len(names):
            raise ValueError(f"contender names must be unique: {names}")
        self.state: dict[str, Any] = {}
        self.setup_s: dict[str, float] = {}
        self.times: dict[str, list[float]] = {n: [] for n in names}
        self.last: dict[str, Any] = {}
        self._set_up = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.contenders]

    def set_up(self) -> Timer:
        """Each contender's set-up, in order, timed on its own (not part of any step's time)."""
        for c in self.contenders:
            t0 = time.perf_counter()
            self.state[c.name] = c.setup() if c.setup is not None else None
            self.setup_s[c.name] = time.perf_counter() - t0
        self._set_up = True
        return self

    def run(self, repeats: int, warmup: int = 0, after: Callable[[int, Timer], Any] | None = None) -> Timer:
        """`warmup` untimed rounds, then `repeats` timed rounds; in each round every contender's
        step once, in turn. `after(round, timer)` runs after each timed round, outside the timing."""
        if not self._set_up:
            self.set_up()
        for _ in range(warmup):
            for c in self.contenders:
                c.step(self.state[c.name])
        for r in range(1, repeats + 1):
            for c in self.contenders:
                t0 = time.perf_counter()
                out = c.step(self.state[c.name])
                wall = time.perf_counter() - t0
                self.times[c.name].append(float(c.clock(out)) if c.clock is not None else wall)
                self.last[c.name] = out
            if after is not None:
                after(r, self)
        return self

    def _times(self, name: str, skip: int) -> list[float]:
        t = self.times[name]
        return t[skip:] if len(t) > skip else t

    def median(self, name: str, skip: int = 0) -> float:
        """Median seconds per step; `skip` leaves out the first repeats (e.g. a first call that
        also allocates), unless that would leave none."""
        return statistics.median(self._times(name, skip))

    def mean(self, name: str, skip: int = 0) -> float:
        return statistics.fmean(self._times(name, skip))

    def best(self, name: str) -> float:
        return min(self.times[name])

    def total(self, name: str) -> float:
        return float(sum(self.times[name]))

    def spread(self, name: str, skip: int = 0) -> float:
        """Interquartile range of the seconds per step (0 with fewer than two repeats)."""
        t = self._times(name, skip)
        if len(t) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(t, n=4, method="inclusive")
        return q3 - q1

    def ratio(self, name: str, to: str, skip: int = 0) -> float:
        """Median of `name` over median of `to`, both from this run's interleaved repeats."""
        return self.median(name, skip) / self.median(to, skip)

    def score(self, name: str) -> Any:
        c = next(c for c in self.contenders if c.name == name)
        return c.score(self.state[name], self.last.get(name)) if c.score is not None else None

    def scores(self) -> dict[str, Any]:
        return {c.name: self.score(c.name) for c in self.contenders}


def command(module: str, argv) -> str:
    """The command line that ran benchmark `module` (argv as given to main, else sys.argv)."""
    return " ".join([f"python -m benchmarks.perf.{module}", *(argv if argv is not None else sys.argv[1:])])


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


def _plain(value):
    """numpy scalars as the Python numbers JSON writes (a record's figures often are ones)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def append_record(out: Path, name: str, record: dict, threads: int) -> Path:
    """Append `record` (figures and ratios), with the machine it ran on, to <out>/<name>.jsonl:
    the history `python -m benchmarks.perf.summary` reads the latest entry of."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps({"benchmark": name, **record, "machine": machine(threads)}, default=_plain) + "\n")
    return path


def publish(
    out: Path, name: str, record: dict, threads: int, markdown: str | None = None, snapshot: bool = False
) -> Path:
    """Append the record to <out>/<name>.jsonl; with `snapshot` also write it alone to
    <out>/<name>.json; write `markdown` to <out>/<name>.md and print it."""
    path = append_record(out, name, record, threads)
    if snapshot:
        (Path(out) / f"{name}.json").write_text(json.dumps(record, indent=1, default=_plain))
    if markdown is not None:
        (Path(out) / f"{name}.md").write_text(markdown)
        print(markdown)
    return path
