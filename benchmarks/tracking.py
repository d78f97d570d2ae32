"""Optional experiment tracking (`tracking=mlflow`): each run's config, numbers and record, and a
table command's rendered tables, logged to an MLflow store. The records stay the results."""

from __future__ import annotations

import json
import os
from pathlib import Path

from unlearn.errors import ConfigError

NAMES = ("none", "mlflow")


def _import():
    """The mlflow module; ConfigError (one line) where the optional extra is not installed."""
    try:
        import mlflow
    except ImportError as exc:
        raise ConfigError(
            "tracking=mlflow needs MLflow: pip install 'recunlearn[tracking]' "
            "(or mlflow-skinny), or run with tracking=none."
        ) from exc
    return mlflow


def _mlflow(cfg: dict):
    """The mlflow module pointed at the configured store and experiment."""
    mlflow = _import()
    uri = str(cfg.get("uri"))
    if uri.startswith("file:") or "://" not in uri:  # MLflow keeps its file store only on request
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(str(cfg.get("experiment") or "recunlearn"))
    return mlflow


def check(cfg: dict) -> None:
    """Refuse an unknown tracking option, or mlflow without the package, before any run starts."""
    name = (cfg.get("tracking") or {}).get("name", "none")
    if name not in NAMES:  # pragma: no cover - Hydra refuses an unknown option file first
        raise ConfigError(f"Unknown tracking '{name}'. Valid: {', '.join(NAMES)}.")
    if name == "mlflow":
        _import()


def metric_name(key: str) -> str:
    return key.replace("@", "_at_")


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, f"{name}."))
        else:
            out[name] = v
    return out


def log_run(cfg: dict, record: dict, record_path: Path) -> str | None:
    """Log one run (its config, the record's finite numbers, the record file); the MLflow run id."""
    tcfg = cfg.get("tracking") or {}
    if tcfg.get("name", "none") != "mlflow":
        return None
    mlflow = _mlflow(tcfg)
    skip = ("hydra", "tracking")
    params = {
        k: json.dumps(v) if isinstance(v, (list, tuple)) else v
        for k, v in flat({k: v for k, v in cfg.items() if k not in skip}).items()
    }
    metrics = {
        metric_name(k): float(v)
        for k, v in record.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    }
    tags = {
        k: str(record[k]) for k in ("run_id", "status", "method", "dataset", "git_commit") if record.get(k) is not None
    }
    with mlflow.start_run(run_name=str(record.get("run_id"))) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.log_artifact(str(record_path))
    return run.info.run_id


def log_tables(tcfg: dict, name: str, paths: list[Path]) -> str:
    """Log a table command's rendered files (tables and figures) as one MLflow run's artifacts."""
    mlflow = _mlflow(tcfg)
    with mlflow.start_run(run_name=f"table {name}") as run:
        mlflow.set_tags({"table": name})
        for p in paths:
            mlflow.log_artifact(str(p), artifact_path=Path(p).parent.name)
    return run.info.run_id
