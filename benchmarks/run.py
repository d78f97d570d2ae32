"""The Hydra runner: compose -> run_id -> skip if done -> lifecycle -> atomic record.

python -m benchmarks.run method=sisa dataset=ml100k seed=1
python -m benchmarks.run -m method=retrain,sisa seed=0,1,2
python -m benchmarks.run -m experiment=smoke
python -m benchmarks.run -m experiment=tune_bpr dataset=ml100k   (tuning: benchmarks/tune.py)
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from datetime import datetime, timezone

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from unlearn import io
from unlearn.errors import UserError
from unlearn.plugins import import_user_modules

from . import presets, tracking
from .records import load_result, manifest, run_dir, run_id

log = logging.getLogger("benchmarks.run")


def _job() -> tuple[int, bool]:
    try:
        hc = HydraConfig.get()
        return int(hc.job.get("num", 0) or 0), hc.mode == RunMode.MULTIRUN
    except ValueError:  # called outside Hydra (tests)
        return 0, False


def refuse(exc: UserError, multirun: bool) -> dict:
    """A user error found before training: one message, nothing written. In a sweep the other jobs
    go on (the sweep exits non-zero at its end); a single run exits with 2."""
    if multirun:  # the job's log line is its one message (the sweep's console shows it)
        log.error("%s", exc)
        return {"status": "refused", "error": str(exc)}
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)


def execute(cfg: dict, job_num: int = 0, multirun: bool = False) -> dict | None:
    """Run one configuration; returns the record (None when skipped). Exits non-zero on a user
    error found before training, writing nothing."""
    import unlearn  # noqa: F401  (fills the registries)
    from unlearn import lifecycle
    from unlearn.runtime import Runtime

    rid = run_id(cfg)
    out = run_dir(cfg, rid)
    done = load_result(out / "result.json")
    if done and done.get("status") == "ok" and not cfg.get("force"):
        log.info("run %s already has a result; skipping (force=true reruns it)", rid)
        return None
    started, t0, cpu0 = datetime.now(timezone.utc), time.perf_counter(), time.process_time()
    try:
        import_user_modules(cfg.get("plugins"))
        runtime = Runtime.from_config(cfg.get("runtime") or {}, job_num)
        prepared = lifecycle.prepare(cfg, runtime)
    except UserError as exc:
        return refuse(exc, multirun)
    identity = {
        "run_id": rid,
        **lifecycle.describe(prepared),
        "presets": cfg.get("presets", cfg["submodel"].get("name")),
    }
    log.info(
        "run %s: %s",
        rid,
        ", ".join(f"{k}={identity[k]}" for k in ("dataset", "method", "submodel", "partitioner", "aggregator", "seed")),
    )
    try:
        record = {**identity, "status": "ok", **lifecycle.execute(prepared)}
    except Exception as exc:  # a failure while running: record it, let the sweep go on
        record = {
            **identity,
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        log.error("run %s failed: %s", rid, record["error"])
    man = manifest(started, time.perf_counter() - t0, prepared.runtime.device)
    man["wall_cpu_s"] = time.process_time() - cpu0  # the job's process CPU seconds beside its wall_s
    record.update(man)
    io.write_json(out / "manifest.json", man)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    io.write_json(out / "result.json", record)
    log.info("wrote %s", out / "result.json")
    if tracking.log_run(cfg, record, out / "result.json"):
        log.info("logged run %s to MLflow (%s)", rid, cfg["tracking"]["uri"])
    if record["status"] != "ok" and not multirun:
        print(f"error: run failed: {record['error']}", file=sys.stderr)
        sys.exit(1)
    return record


@hydra.main(config_path="pkg://benchmarks.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | float | None:
    container = OmegaConf.to_container(cfg, resolve=True)
    job_num, multirun = _job()
    if container.get("tune"):  # experiment=tune_<submodel>: a trial of the Optuna sweeper (benchmarks/tune.py)
        from .tune import objective

        return objective(container, job_num)
    try:
        hc = HydraConfig.get()
        container = presets.apply(container, hc.runtime.choices.get("submodel"))
        tracking.check(container)
    except UserError as exc:
        return refuse(exc, multirun)
    record = execute(container, job_num, multirun)
    if record and record.get("status") != "ok":
        return record
    if record:
        keys = ("before.ndcg@20", "after.ndcg@20", "retrain.ndcg@20", "fit_s", "unlearn_s", "speedup", "exact_gap")
        log.info("  ".join(f"{k}={record[k]:.4g}" for k in keys if isinstance(record.get(k), (int, float))))
    return {"status": record["status"]} if record else {"status": "skipped"}


if __name__ == "__main__":
    main()
