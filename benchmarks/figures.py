"""Figures from result records: PNG and PDF."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _label(row, keys) -> str:
    return " / ".join(str(row[k]) for k in keys)


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def _num(df, col):
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)


def utility_vs_time(df: pd.DataFrame, label_keys: list[str], metric: str, stem: Path) -> list[Path]:
    if metric not in df or "unlearn_s" not in df:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, g in df.groupby(label_keys, sort=True):
        x, y = _num(g, "unlearn_s"), _num(g, metric)
        ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if len(g) > 1 else None,
                    yerr=y.std(ddof=1) if len(g) > 1 else None, fmt="o", capsize=3,
                    label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
    if "retrain_s" in df and f"retrain.{metric.split('.', 1)[1]}" in df:
        ax.scatter(_num(df, "retrain_s").mean(), _num(df, f"retrain.{metric.split('.', 1)[1]}").mean(),
                   marker="*", s=150, color="k", label="retrain oracle")
    ax.set_xscale("log")
    ax.set_xlabel("unlearning time (s, log scale)")
    ax.set_ylabel(metric)
    ax.set_title("Utility after unlearning vs unlearning time")
    ax.legend(fontsize=7)
    return _save(fig, stem)


def metric_vs_k(df: pd.DataFrame, label_keys: list[str], metric: str, ks: list[int], stem: Path) -> list[Path]:
    cols = [f"after.{metric}@{k}" for k in ks if f"after.{metric}@{k}" in df]
    if len(cols) < 2:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, g in df.groupby(label_keys, sort=True):
        means = [_num(g, c).mean() for c in cols]
        ax.plot(ks[: len(cols)], means, marker="o",
                label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
    ax.set_xlabel("K")
    ax.set_ylabel(f"{metric}@K after unlearning")
    ax.set_title(f"{metric}@K")
    ax.legend(fontsize=7)
    return _save(fig, stem)


def metric_vs(df: pd.DataFrame, x: str, y: str, label_keys: list[str], stem: Path, title: str = "") -> list[Path]:
    if x not in df or y not in df or df[x].nunique() < 2:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, g in df.groupby(label_keys, sort=True):
        pts = pd.DataFrame({"x": _num(g, x), "y": _num(g, y)}).groupby("x")["y"].agg(["mean", "std"]).reset_index()
        ax.errorbar(pts["x"], pts["mean"], yerr=pts["std"].fillna(0), marker="o", capsize=3,
                    label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{y} vs {x}")
    ax.legend(fontsize=7)
    return _save(fig, stem)


def convergence(df: pd.DataFrame, stem: Path) -> list[Path]:
    """Unlearn-ALS: objective and retrain_gap per sweep, warm start (unlearning) against cold
    start (retraining from random factors), from the record traces."""
    panels = [(name, f"unlearn.{name}_trace", f"retrain.{name}_trace") for name in ("objective", "retrain_gap")
              if f"unlearn.{name}_trace" in df]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (name, warm, cold) in zip(axes[0], panels):
        for _, row in df.dropna(subset=[warm]).iterrows():
            label = f"{row['dataset']} seed {row['seed']}"
            traces = {col: np.asarray(json.loads(row[col])) for col in (warm, cold)
                      if col in row and isinstance(row[col], str)}
            # objectives: excess over the lowest value either run reached, relative to it
            floor = min(t.min() for t in traces.values()) if name == "objective" else None
            for col, style, kind in ((warm, "-", "warm (Unlearn-ALS)"), (cold, "--", "cold (retrain)")):
                if col in traces:
                    values = traces[col] if floor is None else (traces[col] - floor) / abs(floor) + 1e-12
                    ax.plot(range(len(values)), values, style, marker=".", label=f"{kind}, {label}")
        ax.set_yscale("log")
        ax.set_xlabel("sweep (0 = starting factors)")
        ax.set_ylabel("objective excess over the best value reached (relative)" if name == "objective"
                      else name.replace("_", " "))
        ax.legend(fontsize=6)
    fig.suptitle("Unlearn-ALS convergence: warm vs cold start")
    return _save(fig, stem)
