"""A progress bar over the jobs of a sweep (Hydra callback).

With the basic launcher jobs run in this process and `on_job_end` moves the bar. Launchers that run
jobs elsewhere (joblib workers, submitit's local processes or SLURM jobs) call `on_job_end` in the
job's own process only, on an unpickled copy of this callback: there it leaves a small marker file,
`<sweep dir>/.progress/<job key>.json` (the job's status), and a thread in the launching process
counts the markers of this sweep's jobs while the launcher waits. Markers carry the refused jobs
too, so the sweep ends non-zero on a refused job whichever the launcher. Under submitit's SLURM
launcher the callback also makes job polling work without an accounting database and shows
submitit's repeated sacct warning once (benchmarks/scheduler.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from tqdm.auto import tqdm

MARKERS = ".progress"
POLL_S = 2.0


def _sweep_overrides(config: DictConfig) -> list[str]:
    params = dict(config.hydra.sweeper.get("params") or {})
    task = list(config.hydra.overrides.get("task") or [])
    return [f"{k}={v}" for k, v in params.items()] + task


def count_jobs(config: DictConfig) -> int:
    """Number of jobs the basic sweeper will launch: product of the sweep lists."""
    parser = OverridesParser.create()
    sizes: dict[str, int] = {}
    for override in parser.parse_overrides(_sweep_overrides(config)):
        key = override.get_key_element()
        sizes[key] = len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    return max(1, int(list(itertools.accumulate(sizes.values(), lambda a, b: a * b))[-1])) if sizes else 1


def job_key(overrides) -> str:
    """A job's marker name: a hash of its override list (the same in the job and the launcher)."""
    text = "\n".join(sorted(str(o) for o in overrides))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def expected_keys(config: DictConfig) -> set[str] | None:
    """Marker names of this sweep's jobs, as the basic sweeper splits them; None when unknown."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parsed = OverridesParser.create().parse_overrides(_sweep_overrides(config))
        batches = BasicSweeper.split_arguments(parsed, None)
        return {job_key(job) for batch in batches for job in batch}
    except Exception:
        return None


def _is_multirun(config: DictConfig) -> bool:
    try:
        return str(config.hydra.mode).endswith("MULTIRUN")
    except Exception:
        return False


def _outcome(job_return: Any) -> tuple[str, str | None]:
    try:
        value = job_return.return_value
    except Exception as exc:  # the job raised; Hydra reports it
        return "error", f"{type(exc).__name__}: {exc}"
    if isinstance(value, dict):
        return str(value.get("status", "ok")), value.get("error")
    return "ok", None


class SweepProgress(Callback):
    """Also ends the sweep with a non-zero exit when a job was refused (bad config or data), after
    every other job has run."""

    def __init__(self) -> None:
        self.bar = None
        self.problems: list[str] = []
        self.total: int | None = None
        self.markers: Path | None = None
        self.keys: set[str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # launchers that run jobs in other processes (joblib, submitit) pickle the callbacks: the bar,
    # the tally and the polling thread belong to the launching process only
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from .preflight import check_sweep

        try:
            check_sweep(config, _sweep_overrides(config))  # exits 2 when a job would be refused
        except Exception:  # pragma: no cover - a job that cannot even compose fails on its own
            pass
        launcher = str(config.hydra.launcher.get("_target_", ""))
        if "submitit" in launcher and "Slurm" in launcher:
            try:
                from . import scheduler

                scheduler.install()
            except Exception:  # a courtesy; never fail a sweep over it
                pass
        try:
            self.total = count_jobs(config)
        except Exception:  # progress is a courtesy; never fail a sweep over it
            self.total = None
        self.keys = expected_keys(config)
        try:
            self.markers = Path(str(config.hydra.sweep.dir)) / MARKERS
        except Exception:
            self.markers = None
        self.bar = tqdm(total=self.total, desc="sweep", unit="job", position=0, leave=True)
        if self.markers is not None and "BasicLauncher" not in launcher:
            self._thread = threading.Thread(target=self._poll, name="sweep-progress", daemon=True)
            self._thread.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        status, error = _outcome(job_return)
        if self.bar is not None:  # the basic launcher: this job ran in the launching process
            with self._lock:
                if status == "refused":
                    self.problems.append(f"job {config.hydra.job.get('num')}: {error}")
                self.bar.update(1)
            return
        if _is_multirun(config):  # a job of a sweep, in a worker or a scheduler's job
            try:
                _write_marker(
                    Path(str(config.hydra.sweep.dir)) / MARKERS,
                    job_key(config.hydra.overrides.task),
                    {
                        "num": config.hydra.job.get("num"),
                        "id": str(config.hydra.job.get("id")),
                        "status": status,
                        "error": error,
                    },
                )
            except Exception:  # never fail a finished job over its progress marker
                pass

    def finished(self) -> dict[str, dict]:
        """Markers of this sweep's jobs written so far (name -> content)."""
        out: dict[str, dict] = {}
        if self.markers is None or not self.markers.is_dir():
            return out
        for path in self.markers.glob("*.json"):
            if self.keys is not None and path.stem not in self.keys:
                continue  # another sweep's job (two sweeps started in the same second share a dir)
            try:
                out[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return out

    def _refresh(self) -> None:
        done = len(self.finished())
        if self.total is not None:
            done = min(done, self.total)
        with self._lock:
            if self.bar is not None and done > self.bar.n:
                self.bar.update(done - self.bar.n)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._refresh()
            except Exception:
                pass

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            try:
                self._refresh()
            except Exception:
                pass
            for marker in sorted(self.finished().values(), key=lambda m: int(m.get("num") or 0)):
                if marker.get("status") == "refused":
                    self.problems.append(f"job {marker.get('num')}: {marker.get('error')}")
        if self.bar is not None:
            self.bar.close()
        if self.problems:
            print(f"error: {len(self.problems)} job(s) of the sweep were refused before training:", file=sys.stderr)
            for p in self.problems:
                print(f"  {p}", file=sys.stderr)
            sys.exit(2)


def _write_marker(directory: Path, name: str, content: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(content, f)
        os.replace(tmp, directory / f"{name}.json")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
