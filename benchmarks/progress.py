"""A progress bar over the jobs of a sweep (Hydra callback; jobs run in this process with the
basic launcher, in workers with joblib / submitit, where each job logs its own progress)."""
from __future__ import annotations

import itertools
import sys
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from tqdm.auto import tqdm


def count_jobs(config: DictConfig) -> int:
    """Number of jobs the basic sweeper will launch: product of the sweep lists."""
    params = dict(config.hydra.sweeper.get("params") or {})
    task = list(config.hydra.overrides.get("task") or [])
    parser = OverridesParser.create()
    sizes: dict[str, int] = {}
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + task):
        key = override.get_key_element()
        sizes[key] = len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    return max(1, int(list(itertools.accumulate(sizes.values(), lambda a, b: a * b))[-1])) if sizes else 1


class SweepProgress(Callback):
    """Also ends the sweep with a non-zero exit when a job was refused (bad config or data) or
    failed, after every other job has run."""

    def __init__(self) -> None:
        self.bar = None
        self.problems: list[str] = []

    # launchers that run jobs in other processes (joblib, submitit) pickle the callbacks: the bar
    # and the tally belong to the launching process only
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            total = count_jobs(config)
        except Exception:  # progress is a courtesy; never fail a sweep over it
            total = None
        self.bar = tqdm(total=total, desc="sweep", unit="job", position=0, leave=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)
        try:
            value = job_return.return_value
        except Exception:  # the job raised; Hydra reports it
            value = None
        if isinstance(value, dict) and value.get("status") == "refused":
            self.problems.append(f"job {config.hydra.job.get('num')}: {value.get('error')}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.problems:
            print(f"error: {len(self.problems)} job(s) of the sweep were refused before training:", file=sys.stderr)
            for p in self.problems:
                print(f"  {p}", file=sys.stderr)
            sys.exit(2)
