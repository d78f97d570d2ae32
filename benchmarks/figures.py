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


def _legend(ax, size: int) -> None:
    """A legend where something is labelled (a figure whose groups drew nothing gets none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


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
    _legend(ax, 7)
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
    _legend(ax, 7)
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
    _legend(ax, 7)
    return _save(fig, stem)


def _last_round(row, trace: np.ndarray) -> np.ndarray:
    """The last request's part of a trace concatenated over requests (each: start, then sweeps)."""
    sweeps = json.loads(row["unlearn.round_sweeps"]) if isinstance(row.get("unlearn.round_sweeps"), str) else None
    return trace[-(sweeps[-1] + 1):] if sweeps else trace


def convergence(df: pd.DataFrame, stem: Path) -> list[Path]:
    """Unlearn-ALS per sweep, warm start (unlearning) against cold start (retraining from random
    factors, where traced), both against the same target, the retrain oracle: the objective's
    excess over the oracle's objective on the final retained data (relative, signed: below 0 is a
    lower objective than the oracle's), the score distance to the oracle and the top-K rank gap.
    Warm traces are the last request's (the oracle is that request's target; a cold start runs on
    the same final data)."""
    panels = [(name, f"unlearn.{name}_trace", f"retrain.{name}_trace") for name in ("objective", "retrain_gap", "rank_gap")
              if f"unlearn.{name}_trace" in df]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (name, warm, cold) in zip(axes[0], panels):
        against_oracle = True
        for _, row in df.dropna(subset=[warm]).iterrows():
            label = f"{row['dataset']} seed {row['seed']}"
            if pd.notna(row.get("n_forget_users")):
                label += f", {int(row['n_forget_users'])} users in {int(row.get('deletion.rounds', 1))} request(s)"
            traces = {col: np.asarray(json.loads(row[col]), dtype=float) for col in (warm, cold)
                      if col in row and isinstance(row[col], str)}
            traces = {col: _last_round(row, t) if col == warm else t for col, t in traces.items()}
            if name == "objective":
                target = pd.to_numeric(row.get("unlearn.oracle_objective"), errors="coerce")
                if pd.isna(target):  # an older record: the best value either run reached
                    target, against_oracle = min(t.min() for t in traces.values()), False
                traces = {col: (t - target) / abs(target) for col, t in traces.items()}
            for col, style, kind in ((warm, "-", "warm (Unlearn-ALS)"), (cold, "--", "cold (retrain)")):
                if col in traces and len(traces[col]):
                    ax.plot(range(len(traces[col])), traces[col], style, marker=".", label=f"{kind}, {label}")
        if name == "objective":
            ax.set_yscale("symlog", linthresh=1e-9)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.set_ylabel("objective excess over the retrain oracle's (relative)" if against_oracle
                          else "objective excess over the best value reached (relative)")
        else:
            ax.set_yscale("symlog", linthresh=1e-4) if name == "rank_gap" else ax.set_yscale("log")
            ax.set_ylabel("1 - top-K Jaccard with the oracle (retained users)" if name == "rank_gap"
                          else "||S - S(oracle)||_F / ||S(oracle)||_F (raw scores)")
        ax.set_xlabel("sweep (0 = starting factors)")
        _legend(ax, 6)
    fig.suptitle("Unlearn-ALS convergence to the retrain oracle: warm vs cold start")
    return _save(fig, stem)
