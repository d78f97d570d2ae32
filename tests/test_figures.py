"""Figures a paper can use: legends that name methods, error bars over seeds, no run lost off a log
axis, tick labels that do not overlap, the oracle as a labelled reference."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.container import ErrorbarContainer
from matplotlib.legend import Legend

from benchmarks import figures


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


LABEL = ["method", "partitioner", "aggregator", "n_shards", "deletion.unit"]


def record(method, seed, *, partitioner="none", aggregator="none", n_shards=1, unlearn_s=1.0, ndcg=0.3, **extra):
    rec = {
        "dataset": "synthetic",
        "submodel": "bpr",
        "method": method,
        "partitioner": partitioner,
        "aggregator": aggregator,
        "n_shards": n_shards,
        "deletion.unit": "user",
        "deletion.ratio": 0.01,
        "seed": seed,
        "unlearn_s": unlearn_s,
        "retrain_s": 2.0 + 0.1 * seed,
        "speedup": 2.0 / unlearn_s if unlearn_s else np.inf,
    }
    for k in (10, 20, 50):
        rec[f"after.ndcg@{k}"] = ndcg * k / 20 + 0.01 * seed
        rec[f"retrain.ndcg@{k}"] = 0.4 * k / 20 + 0.01 * seed
    rec.update(extra)
    return rec


def runs(seeds=(0, 1, 2), sisa_s=0.5):
    recs = []
    for s in seeds:
        recs += [
            record("retrain", s, unlearn_s=2.0 + 0.1 * s, ndcg=0.4),
            record("sisa", s, partitioner="random", aggregator="mean", n_shards=10, unlearn_s=sisa_s * (1 + 0.2 * s)),
            record(
                "receraser", s, partitioner="ubp", aggregator="attention", n_shards=10, unlearn_s=3.0 + s, ndcg=0.35
            ),
        ]
    return pd.DataFrame(recs)


def legend_of(fig) -> Legend:
    legends = [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends)
    assert len(legends) == 1
    return legends[0]


def legend_labels(fig) -> list[str]:
    return [t.get_text() for t in legend_of(fig).get_texts()]


def bars_drawn(container: ErrorbarContainer) -> bool:
    """Whether the container draws some bar of non-zero length."""
    for coll in container.lines[2]:
        for seg in coll.get_segments():
            if len(seg) and np.ptp(np.asarray(seg), axis=0).max() > 0:
                return True
    return False


def shown_labels(ax, axis) -> list:
    """The axis' tick labels with text at ticks inside the view (major and minor)."""
    lo, hi = sorted(ax.get_xlim() if axis is ax.xaxis else ax.get_ylim())
    pairs = [
        *zip(axis.get_majorticklocs(), axis.get_ticklabels()),
        *zip(axis.get_minorticklocs(), axis.get_ticklabels(minor=True)),
    ]
    return [t for loc, t in pairs if lo <= loc <= hi and t.get_visible() and t.get_text()]


def overlapping(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if ba.overlaps(bb)]


def assert_ticks_apart(fig):
    fig.canvas.draw()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            assert not overlapping(shown_labels(ax, axis)), overlapping(shown_labels(ax, axis))


def all_figures(df, convergence_df=None):
    figs = [
        figures.draw_utility_vs_time(df, LABEL, "after.ndcg@20"),
        figures.draw_metric_vs_k(df, LABEL, "ndcg", [10, 20, 50]),
        figures.draw_metric_vs(df, "n_shards", "unlearn_s", ["method", "partitioner"]),
    ]
    if convergence_df is not None:
        figs.append(figures.draw_convergence(convergence_df))
    assert all(f is not None for f in figs)
    return figs


def convergence_runs(seeds=(0, 1, 2)):
    recs = []
    for s in seeds:
        warm = [100.0 * (1 + 1e-3 * 0.5**i * (1 + 0.1 * s)) for i in range(8)]
        cold = [100.0 * (1 + 0.5 * 0.6**i * (1 + 0.1 * s)) for i in range(12)]
        recs.append(
            {
                "dataset": "synthetic",
                "method": "unlearn_als",
                "seed": s,
                "n_forget_users": 5,
                "deletion.rounds": 1,
                "unlearn.oracle_objective": 100.0,
                "unlearn.objective_trace": json.dumps(warm),
                "retrain.objective_trace": json.dumps(cold),
                "unlearn.retrain_gap_trace": json.dumps([0.1 * 0.5**i * (1 + 0.1 * s) for i in range(8)]),
                "unlearn.rank_gap_trace": json.dumps([max(0.0, 0.05 * 0.5**i - 0.002 * s) for i in range(8)]),
            }
        )
    return pd.DataFrame(recs)


def test_legend_names_methods_and_only_what_differs():
    df = runs()
    for fig in all_figures(df, convergence_runs())[:3]:
        labels = legend_labels(fig)
        assert any(label.startswith("sisa") for label in labels), labels
        assert any(label.startswith("receraser") for label in labels), labels
        assert figures.ORACLE in labels, labels
        for label in labels:
            words = label.replace("/", " ").replace("(", " ").replace(")", " ").replace(",", " ").split()
            assert "none" not in words and "-" not in words, label
            assert " / " not in label and "user" not in words, label  # deletion.unit is the same for every group
        assert legend_of(fig).get_title().get_text()  # the legend says what its entries show


def test_legend_shows_settings_that_tell_variants_apart():
    recs = [
        record("sisa", s, partitioner="random", aggregator="mean", n_shards=k, unlearn_s=0.1 * k)
        for s in (0, 1)
        for k in (5, 10)
    ]
    recs += [
        record("receraser", s, partitioner="ubp", aggregator=agg, n_shards=10, unlearn_s=1.0)
        for s in (0, 1)
        for agg in ("attention", "mean")
    ]
    labels = legend_labels(figures.draw_utility_vs_time(pd.DataFrame(recs), LABEL, "after.ndcg@20"))
    assert "sisa random/mean (5 shards)" in labels and "sisa random/mean (10 shards)" in labels, labels
    assert "receraser ubp/attention (10 shards)" in labels, labels


def test_legend_outside_the_data_area():
    fig = figures.draw_utility_vs_time(runs(), LABEL, "after.ndcg@20")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert not legend_of(fig).get_window_extent().overlaps(ax.get_window_extent())


def test_oracle_is_a_labelled_star():
    df = runs().query("method != 'retrain'")  # the oracle from the records' retrain.* columns
    for fig in (
        figures.draw_utility_vs_time(df, LABEL, "after.ndcg@20"),
        figures.draw_metric_vs_k(df, LABEL, "ndcg", [10, 20, 50]),
    ):
        leg = legend_of(fig)
        handles = dict(zip([t.get_text() for t in leg.get_texts()], leg.legend_handles))
        assert figures.ORACLE in handles
        star = [c for c in fig.axes[0].containers if c.get_label() == figures.ORACLE]
        assert star and star[0].lines[0].get_marker() == "*"


def test_zero_second_run_is_plotted_and_marked():
    df = runs(sisa_s=0.0)
    fig = figures.draw_utility_vs_time(df, LABEL, "after.ndcg@20")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    hollow = [
        line
        for line in ax.get_lines()
        if line.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0)) and len(line.get_xdata())
    ]
    assert hollow, "the 0 s point is not marked"
    x = float(np.asarray(hollow[0].get_xdata())[0])
    assert 0 < x and lo <= x <= hi  # on the axis, not dropped
    assert "0 s" in ax.get_title()  # the note says where 0 s is drawn


def test_infinite_value_is_plotted_and_marked():
    df = runs(sisa_s=0.0)  # speedup = 2 / 0 = inf
    df["speedup"] = df["retrain_s"] / df["unlearn_s"].replace(0.0, np.nan)
    df.loc[df["method"] == "sisa", "speedup"] = np.inf
    fig = figures.draw_metric_vs(df, "n_shards", "speedup", ["method"], yscale="log")
    ax = fig.axes[0]
    hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0))]
    assert hollow and np.isfinite(np.asarray(hollow[0].get_ydata(), float)).all()
    lo, hi = ax.get_ylim()
    assert lo <= float(np.asarray(hollow[0].get_ydata())[0]) <= hi
    assert "∞" in ax.get_title()


def test_error_bars_over_seeds():
    for fig in all_figures(runs(), convergence_runs()):
        containers = [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert containers
        for c in containers:
            assert c.has_yerr and bars_drawn(c), c.get_label()
    fig = figures.draw_utility_vs_time(runs(), LABEL, "after.ndcg@20")
    assert all(c.has_xerr for c in fig.axes[0].containers)  # time spreads too
    assert "std over 3 seeds" in fig.axes[0].get_title()


def test_one_seed_draws_no_bars_and_says_so():
    fig = figures.draw_metric_vs_k(runs(seeds=(0,)), LABEL, "ndcg", [10, 20, 50])
    assert not any(bars_drawn(c) for c in fig.axes[0].containers)
    assert "no error bars" in fig.axes[0].get_title()


@pytest.mark.parametrize("sisa_s", [0.5, 0.0, 1e-4])
def test_tick_labels_do_not_overlap(sisa_s):
    for fig in all_figures(runs(sisa_s=sisa_s), convergence_runs()):
        assert_ticks_apart(fig)


@pytest.mark.parametrize("lo, hi", [(0.15, 0.9), (0.31, 0.41), (1.1, 9.0), (0.15, 3.0), (2.0, 30.0)])
def test_log_axis_keeps_two_labels_none_overlapping(lo, hi):
    df = runs()
    df["unlearn_s"] = np.where(df["method"] == "sisa", lo, np.where(df["method"] == "retrain", hi, (lo + hi) / 2))
    fig = figures.draw_utility_vs_time(df, LABEL, "after.ndcg@20")
    assert_ticks_apart(fig)
    assert len(shown_labels(fig.axes[0], fig.axes[0].xaxis)) >= 2


def test_crowded_categorical_axis():
    recs = [
        record("sisa", s, partitioner=f"partitioner_with_a_long_name_{i}", aggregator="mean", n_shards=10)
        for i in range(14)
        for s in (0, 1)
    ]
    fig = figures.draw_metric_vs(pd.DataFrame(recs), "partitioner", "after.ndcg@20", ["method"])
    assert_ticks_apart(fig)


def test_axis_labels_from_the_key_registry(monkeypatch):
    from unlearn.metrics.keys import KeyInfo

    declared = {"unlearn_s": KeyInfo("unlearn_s", "unlearn time", unit="s")}
    monkeypatch.setattr(figures, "_key_info", lambda key: declared.get(key))
    fig = figures.draw_utility_vs_time(runs(), LABEL, "after.ndcg@20")
    assert fig.axes[0].get_xlabel() == "unlearn time (s)"
    assert fig.axes[0].get_ylabel() == "after.ndcg@20"  # undeclared: the raw key


def test_saves_png_and_pdf(tmp_path):
    df = runs()
    paths = figures.utility_vs_time(df, LABEL, "after.ndcg@20", tmp_path / "u")
    paths += figures.metric_vs_k(df, LABEL, "ndcg", [10, 20, 50], tmp_path / "k")
    paths += figures.metric_vs(df, "n_shards", "unlearn_s", ["method"], tmp_path / "m", "title")
    paths += figures.convergence(convergence_runs(), tmp_path / "c")
    assert sorted(p.name for p in paths) == sorted(f"{s}.{e}" for s in "ukmc" for e in ("png", "pdf"))
    assert all(p.stat().st_size > 0 for p in paths)
    assert figures.metric_vs(df, "deletion.ratio", "unlearn_s", ["method"], tmp_path / "r") == []  # one ratio


def test_the_tradeoff_marks_exact_and_approximate_methods_apart(tmp_path):
    """Speedup (log) against what is left behind; exact methods filled circles, approximate ones
    hollow triangles, each with its spread over seeds."""
    recs = []
    for s in (0, 1, 2):
        for method, family, speed, gap in (
            ("retrain", "exact", 1.0, 0.0),
            ("sisa", "exact", 5.0, 0.02),
            ("scif", "approximate", 300.0 + s, 0.8 + 0.05 * s),
        ):
            recs.append(
                record(method, s, **{"method.family": family, "speedup": speed, "rank_gap_over_floor@20.deleted": gap})
            )
    df = pd.DataFrame(recs)
    fig = figures.draw_tradeoff(df, ["method"], "speedup", "rank_gap_over_floor@20.deleted")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert bars["scif"].lines[0].get_marker() == "^" and bars["sisa"].lines[0].get_marker() == "o"
    hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "white" and ln.get_marker() == "^"]
    assert len(hollow) == 1  # the approximate point, drawn hollow
    y = bars["scif"].lines[0].get_ydata()[0]
    assert y == pytest.approx(0.85)
    assert figures.draw_tradeoff(df.drop(columns=["speedup"]), ["method"], "speedup", "x") is None
