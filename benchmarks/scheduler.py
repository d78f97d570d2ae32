"""Sweeps through Hydra's submitit SLURM launcher on clusters without an accounting database.

submitit asks `sacct` for the state of the jobs it waits on. Where the cluster keeps no accounting
(`AccountingStorageType=accounting_storage/none`, as on scripts/slurm-local.sh's one-node cluster)
`sacct` fails on every status poll; submitit then logs a warning each time (three copies: its two
handlers and Hydra's), and it can tell finished jobs only by their result files: a job cancelled
or killed by the scheduler writes none, and the sweep would wait for it forever.

`install()` (called by benchmarks.progress in the launching process, never in a job):
- reads job states from `squeue --states=all` when `sacct` fails; a job that squeue no longer
  lists has left the queue and counts as ended (submitit then reports a job without a result);
- logs the sacct failure once, with what it means, and drops submitit's identical warnings.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from typing import Any

log = logging.getLogger("benchmarks.scheduler")

EXPLANATION = (
    "the cluster has no accounting database; job states are read from squeue instead; "
    "further identical warnings suppressed"
)
# the state given to a job that squeue no longer lists (it ended; how, only accounting could say)
LEFT_QUEUE = "ENDED"
_REPEATED = re.compile(r"^Call #\d+ - Bypassing sacct error")


class RepeatedWarningFilter(logging.Filter):
    """Lets the first of submitit's per-poll sacct warnings through, with an explanation, and drops
    the identical ones after it."""

    def __init__(self) -> None:
        super().__init__("submitit")
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if not _REPEATED.match(message):
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg, record.args = f"{message} ({EXPLANATION})", ()
        return True


_installed = False
_warned = False


def install() -> None:
    """Idempotent; does nothing where submitit is absent or its watcher is not the one we know."""
    global _installed
    if _installed:
        return
    _installed = True
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, RepeatedWarningFilter) for f in logger.filters):
        logger.addFilter(RepeatedWarningFilter())
    try:
        from submitit.slurm import slurm
    except Exception:  # submitit missing: nothing to patch
        return
    watcher = getattr(getattr(slurm, "SlurmJob", None), "watcher", None)
    needed = (
        "_registered",
        "_finished",
        "_info_dict",
        "_num_calls",
        "_last_status_check",
        "_make_command",
        "read_info",
        "is_done",
    )
    if watcher is None or not all(hasattr(watcher, name) for name in needed):
        return  # a submitit whose internals differ: keep its own polling (the filter still applies)
    slurm.SlurmInfoWatcher.update = _update


def _update(self: Any) -> None:
    """SlurmInfoWatcher.update: sacct, else squeue (same bookkeeping as submitit 1.5)."""
    global _warned
    command = self._make_command()
    if command is None:
        return
    self._num_calls += 1
    try:
        proc = subprocess.run(command, capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(
                (proc.stderr or b"").decode(errors="replace").strip() or f"exit status {proc.returncode}"
            )
        self._output = proc.stdout
        self._info_dict.update(self.read_info(proc.stdout))
    except Exception as exc:
        if not _warned:
            _warned = True
            log.warning(
                "sacct failed (%s): %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__, EXPLANATION
            )
        info = _squeue_info(self)
        if info is not None:
            self._info_dict.update(info)
    self._last_status_check = time.time()
    for job_id in self._registered - self._finished:
        if self.is_done(job_id, mode="cache"):
            self._finished.add(job_id)


def _squeue_info(watcher: Any) -> dict[str, dict[str, str]] | None:
    pending = watcher._registered - watcher._finished
    main_ids = sorted({job_id.split("_")[0] for job_id in pending})
    if not main_ids:
        return {}
    try:
        proc = subprocess.run(
            ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", "--jobs=" + ",".join(main_ids)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except Exception as exc:  # squeue missing or hanging: keep the last known states
        log.debug("squeue failed: %s", exc)
        return None
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        log.debug("squeue failed: %s", proc.stderr.strip())
        return None
    listed = watcher.read_info("JobID|State|NodeList\n" + (proc.stdout if proc.returncode == 0 else ""))
    # squeue forgets a job some minutes after it ends (MinJobAge): one it no longer lists has ended
    for job_id in pending:
        if job_id not in listed and job_id.split("_")[0] not in listed:
            listed[job_id] = {"JobID": job_id, "State": LEFT_QUEUE, "NodeList": ""}
    return listed
