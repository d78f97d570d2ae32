"""Unlearn-ALS per sweep, warm start against cold start, both against the retrain oracle: the
objective's excess, the score distance and the top-K rank gap, on symlog axes that keep the
oracle's 0 on the plot."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from .axes import _declutter, _symlog_ticks
from .drawing import _errors, _saved
from .groups import _groups, _spread_note
from .labels import _EMPTY, ORACLE, _entry, _text


def _last_round(row, trace: np.ndarray) -> np.ndarray:
    """The last request's part of a trace concatenated over requests (each: start, then sweeps)."""
    sweeps = json.loads(row["unlearn.round_sweeps"]) if isinstance(row.get("unlearn.round_sweeps"), str) else None
    return trace[-(sweeps[-1] + 1) :] if sweeps else trace


def _stack(traces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, n) per sweep over traces of any lengths (a shorter trace stopped earlier)."""
    width = max(len(t) for t in traces)
    m = np.full((len(traces), width), np.nan)
    for i, t in enumerate(traces):
        m[i, : len(t)] = t
    n = (~np.isnan(m)).sum(axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sweep only one trace reached
        mean = np.nanmean(m, axis=0)
        std = np.where(n > 1, np.nanstd(m, axis=0, ddof=1) if len(traces) > 1 else np.nan, np.nan)
    return mean, std, n


_PANELS = {
    "objective": "objective excess over the retrain oracle's (relative)",
    "retrain_gap": "||S - S(oracle)||_F / ||S(oracle)||_F (raw scores)",
    "rank_gap": "1 - top-K Jaccard with the oracle (retained users)",
}
_PANEL_TITLES = {"objective": "objective", "retrain_gap": "score distance to the oracle", "rank_gap": "top-K rank gap"}
_WARM = "warm start (Unlearn-ALS)"
_COLD = "cold start (retrain from random factors)"


def _traces(rows: pd.DataFrame, name: str, warm: str, cold: str, against_oracle: bool) -> tuple[dict, bool]:
    """A group's traces of panel `name` by column (warm: the last request's), the objective's as
    its relative excess over the oracle's objective; whether every excess was against the oracle
    (`against_oracle` and no older record without the oracle's objective)."""
    runs = {warm: [], cold: []}
    for _, row in rows.iterrows():
        traces = {
            col: np.asarray(json.loads(row[col]), dtype=float)
            for col in (warm, cold)
            if col in row and isinstance(row[col], str)
        }
        traces = {col: _last_round(row, t) if col == warm else t for col, t in traces.items() if len(t)}
        if name == "objective" and traces:
            target = pd.to_numeric(row.get("unlearn.oracle_objective"), errors="coerce")
            if pd.isna(target):  # an older record: the best value either run reached
                target, against_oracle = min(t.min() for t in traces.values()), False
            traces = {col: (t - target) / abs(target) for col, t in traces.items()}
        for col, t in traces.items():
            runs[col].append(t)
    return runs, against_oracle


def _draw_panel(ax, groups: list, name: str, warm: str, cold: str, ns: list, against_oracle: bool):
    """One panel's lines, warm and cold per group, and the oracle's 0; adds each sweep's count of
    traces to `ns`. Returns (the mean lines drawn, `against_oracle` as `_traces` leaves it)."""
    lines = []
    for g in groups:
        runs, against_oracle = _traces(g.rows, name, warm, cold, against_oracle)
        for col, kind, ls, marker in ((warm, _WARM, "-", "o"), (cold, _COLD, ":", "s")):
            if runs[col]:
                mean, std, n = _stack(runs[col])
                ns += list(n)
                lines.append(mean)
                label = f"{kind}, {g.label}" if g.label else kind
                ax.errorbar(
                    np.arange(len(mean)),
                    mean,
                    yerr=_errors(std, np.zeros(len(std), bool)),
                    color=g.color,
                    linestyle=ls,
                    marker=marker,
                    markersize=3.5,
                    capsize=2,
                    elinewidth=0.8,
                    errorevery=max(1, len(mean) // 15),
                    label=label,
                )
    ax.axhline(0.0, color="k", linestyle="--", linewidth=1, label=ORACLE, zorder=1)
    return lines, against_oracle


def _symlog_axis(ax, lines: list) -> None:
    """A symlog y axis whose linear band is the decade of the smallest value drawn (no empty
    negative half where every line is >= 0); integer sweeps on x."""
    values = np.abs(np.concatenate(lines)) if lines else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    linthresh = 10.0 ** math.floor(math.log10(values.min())) if len(values) else 1e-9
    linthresh = max(linthresh, 1e-12)
    ax.set_yscale("symlog", linthresh=linthresh)
    if len(lines) and np.nanmin(np.concatenate(lines)) >= 0:  # no empty negative half
        ax.set_ylim(bottom=-linthresh / 2)
    _symlog_ticks(ax, linthresh)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=8, integer=True))


def _label_panel(ax, name: str, against_oracle: bool) -> None:
    ylabel = (
        _PANELS[name]
        if name != "objective" or against_oracle
        else "objective excess over the best value reached (relative)"
    )
    ax.set_ylabel(textwrap.fill(ylabel, 45), fontsize=9)
    ax.set_xlabel("sweep (0 = starting factors)")
    ax.set_title(_PANEL_TITLES[name], fontsize=10)


def _start_legend(fig: Figure, ax, legend_title: str) -> None:
    """The legend under the panels, titled by the start (warm, cold) and the groups, the oracle last."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == ORACLE)  # the oracle last
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(3, len(handles)),
        fontsize=8,
        title="start" + (f", {legend_title}" if legend_title != "runs" else ""),
        title_fontsize=8,
    )


def draw_convergence(df: pd.DataFrame) -> Figure | None:
    """Unlearn-ALS per sweep, warm start (unlearning) against cold start (retraining from random
    factors, where traced), both against the same target, the retrain oracle (the dashed line at
    0): the objective's excess over the oracle's objective on the final retained data (relative,
    signed: below 0 is a lower objective than the oracle's), the score distance to the oracle and
    the top-K rank gap. Warm traces are the last request's (the oracle is that request's target; a
    cold start runs on the same final data). Lines are means over seeds with std bars; symlog axes
    keep 0 (the oracle) on the plot."""
    panels = [
        (name, f"unlearn.{name}_trace", f"retrain.{name}_trace") for name in _PANELS if f"unlearn.{name}_trace" in df
    ]
    if not panels:
        return None
    traced = df.dropna(subset=[panels[0][1]])
    traced = traced[traced[panels[0][1]].map(lambda v: isinstance(v, str))]
    if traced.empty:
        return None
    context = [k for k in ("dataset", "submodel", "n_forget_users", "deletion.rounds") if k in traced]
    groups, legend_title = _groups(traced.drop(columns="method", errors="ignore"), context)
    for g in groups:  # one context: the entries need not name it
        g.label = "" if len(groups) == 1 else g.label
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels) + 0.6, 4.4), squeeze=False, constrained_layout=True
    )
    ns, against_oracle = [], True
    for ax, (name, warm, cold) in zip(axes[0], panels):
        lines, against_oracle = _draw_panel(ax, groups, name, warm, cold, ns, against_oracle)
        _symlog_axis(ax, lines)
        _label_panel(ax, name, against_oracle)
    shared = [
        _entry({k: _text(traced[k].iloc[0])}, False)
        for k in context
        if traced[k].map(_text).nunique() == 1 and _text(traced[k].iloc[0]) not in _EMPTY
    ]
    note = "; ".join(p for p in (", ".join(shared), _spread_note(ns), "warm: the last request's sweeps") if p)
    fig.suptitle("Unlearn-ALS convergence to the retrain oracle: warm vs cold start\n" + note, fontsize=10)
    _start_legend(fig, axes[0][0], legend_title)
    _declutter(fig)
    return fig


def convergence(df: pd.DataFrame, stem: Path) -> list[Path]:
    return _saved(draw_convergence(df), stem)
