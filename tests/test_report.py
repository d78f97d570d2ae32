"""The reporter reads result files only."""

import json

import pandas as pd
import pytest

from benchmarks.report import report
from unlearn.metrics.keys import KEYS


def fake_record(i, method, seed, ndcg, unlearn_s):
    return {
        "run_id": f"r{i}",
        "status": "ok",
        "dataset": "d",
        "method": method,
        "submodel": "bpr",
        "partitioner": "none",
        "aggregator": "none",
        "n_shards": 1,
        "deletion.unit": "user",
        "deletion.selection": "random",
        "deletion.ratio": 0.05,
        "deletion.rounds": 1,
        "seed": seed,
        "before.recall@20": 0.3,
        "after.recall@20": ndcg,
        "after.ndcg@20": ndcg,
        "retrain.ndcg@20": 0.3,
        "after.recall@10": ndcg / 2,
        "after.ndcg@10": ndcg / 2,
        "unlearn_s": unlearn_s,
        "fit_s": 1.0,
        "retrain_s": 2.0,
        "speedup": 2.0 / unlearn_s,
        "exact_gap": 0.0,
        "shards_retrained": [0],
        "mia_auc.after": 0.5,
    }


@pytest.fixture
def results(tmp_path):
    recs = [
        fake_record(0, "a", 0, 0.30, 1.0),
        fake_record(1, "a", 1, 0.32, 1.2),
        fake_record(2, "b", 0, 0.20, 0.1),
        {"run_id": "x", "status": "failed", "error": "boom"},
    ]
    for r in recs:
        d = tmp_path / "runs" / r["run_id"]
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(r))
    return tmp_path


def test_mean_std_n_and_bold(results):
    paths = report(str(results))
    md = (results / "tables" / "utility.md").read_text()
    assert "**0.310 ± 0.014**" in md  # mean ± std of method a, best in bold
    assert "0.200" in md and "**0.200" not in md
    eff = (results / "tables" / "efficiency.md").read_text()
    assert "**0.10**" in eff and "1.10 ± 0.14" in eff  # fastest unlearning in bold, the column's decimals
    tex = (results / "tables" / "utility.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{0.310{\scriptsize\,$\pm$\,0.014}}" in tex
    csv = (results / "tables" / "utility.csv").read_text().splitlines()
    assert csv[0].startswith("method,") and "after.ndcg@20.std" in csv[0]
    assert any(p.suffix == ".pdf" for p in paths)


def test_best_is_marked_per_dataset_where_rows_list_methods_per_dataset():
    """A table of methods per dataset and sub-model marks each dataset's best, not the best over
    datasets (a small dataset's scores would otherwise never be marked)."""
    import numpy as np
    import pandas as pd

    from benchmarks.cells import column_cells, reference_rows

    idx = pd.MultiIndex.from_tuples(
        [("ml1m", "bpr", "receraser"), ("ml1m", "bpr", "sisa"), ("yelp", "bpr", "receraser"), ("yelp", "bpr", "sisa")],
        names=["dataset", "submodel", "method"],
    )
    agg = pd.DataFrame(
        {"after.ndcg@20": [0.30, 0.20, 0.04, 0.05], "after.ndcg@20.std": [np.nan] * 4, "n": [1] * 4}, index=idx
    )
    cells = column_cells(agg, "after.ndcg@20", KEYS.get("after.ndcg@20"), reference_rows(agg))
    assert [c.best for c in cells] == [True, False, False, True]
    assert [c.value for c in cells] == ["0.300", "0.200", "0.040", "0.050"]


def test_directions_come_from_the_key_registry():
    assert KEYS.get("after.ndcg@20").better == "higher" and KEYS.get("exact_gap").better == "lower"
    assert KEYS.get("mia_auc.after").better is None and KEYS.get("forget_hit@20.after").better is None
    assert KEYS.get("partition_drift.ari").better == "higher" and KEYS.get("retrain_rank_gap@20").better == "lower"
    assert KEYS.get("retrain.ndcg@20").reference and KEYS.get("seed_floor@20").reference


def test_empty_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no successful result records"):
        report(str(tmp_path))


def test_unknown_table_is_a_clear_error(results):
    with pytest.raises(SystemExit, match="unknown table 'nope'"):
        report(str(results), table="nope")


def test_variants_of_one_method_are_not_averaged_together(tmp_path):
    for i, (flag, ndcg) in enumerate([(True, 0.4), (False, 0.2), (True, 0.4)]):
        rec = {**fake_record(i, "a", i, ndcg, 1.0), "cfg.aggregator.per_group": flag}
        d = tmp_path / "runs" / f"v{i}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(rec))
    report(str(tmp_path))
    csv = (tmp_path / "tables" / "utility.csv").read_text()
    assert "cfg.aggregator.per_group" in csv.splitlines()[0] and len(csv.splitlines()) == 3


def test_table_follows_overridden_axes_of_its_filter():
    from benchmarks.report import load_spec, narrowed, narrowing

    spec = load_spec("receraser_partition")
    where = narrowing(spec, ["dataset=ml100k", "submodel=bpr_receraser,wmf", "seed=0", "partitioner.n_shards=5"])
    assert where == {"dataset": ["ml100k"], "submodel": ["bpr", "wmf"]}
    spec2 = narrowed(spec, where)
    assert spec2["filter"]["partitioner"] == spec["filter"]["partitioner"]
    assert spec2["filter"]["dataset"] == ["ml100k"] and spec2["title"].endswith("[dataset=ml100k, submodel=bpr,wmf]")
    assert narrowing(spec, []) == {} and narrowed(spec, {}) is spec


def test_spec_table_splits_variants_and_keeps_published_rows(tmp_path):
    """Two settings of one method under the same spec rows get a row each (seeds alone are
    averaged), and published values still line up beside them."""
    from benchmarks.records_load import load_records
    from benchmarks.report import render_spec

    recs = [fake_record(i, "a", seed, ndcg, 1.0) for i, (seed, ndcg) in enumerate([(0, 0.30), (1, 0.32), (0, 0.10)])]
    for r, epochs in zip(recs, (400, 400, 100)):
        r["cfg.aggregator.epochs"] = epochs
        r["cfg.aggregator.hidden"] = 32 if epochs == 400 else 16  # a second setting that differs too
    for r in recs:
        d = tmp_path / "runs" / r["run_id"]
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(r))
    spec = {
        "title": "t",
        "filter": {"dataset": "d"},
        "rows": ["method"],
        "columns": ["after.ndcg@20"],
        "published": {"source": "paper", "rows": [{"method": "a", "after.ndcg@20": 0.5}]},
    }
    df, _ = load_records(tmp_path)
    render_spec("t", spec, df, tmp_path)
    csv = (tmp_path / "tables" / "t.csv").read_text()
    assert "cfg.aggregator.epochs" in csv.splitlines()[0] and "cfg.aggregator.hidden" not in csv.splitlines()[0]
    md = (tmp_path / "tables" / "t.md").read_text()
    assert "0.310 ± 0.014" in md and "0.100" in md and "a (published)" in md and "0.500" in md


def test_two_runs_of_one_seed_count_once():
    """Runs that differ only in what was measured (with and without the exact replica) are one
    sample of their seed: n counts seeds, and the std is over seeds."""
    import pandas as pd

    from benchmarks.aggregate import aggregate

    df = pd.DataFrame({"method": ["a", "a", "a"], "seed": [0, 0, 1], "unlearn_s": [1.0, 3.0, 4.0]})
    out = aggregate(df, ["method"], ["unlearn_s"])
    assert int(out["n"].iloc[0]) == 2 and out["unlearn_s"].iloc[0] == 3.0  # mean of (2.0, 4.0)
    assert abs(out["unlearn_s.std"].iloc[0] - 2**0.5) < 1e-12


def test_completeness_table_never_shows_a_bare_zero_exact_gap_and_prints_intervals(tmp_path):
    """untouched_shards = 0: exact_gap is null in the record, an empty cell (with its footnote) in the
    table; one seed's MIA AUC prints its bootstrap interval, and few pairs are flagged."""
    recs = [
        {
            **fake_record(0, "sisa", 0, 0.3, 1.0),
            "untouched_shards": 0,
            "exact_gap": None,
            "mia_auc.after": 0.61,
            "mia_auc.after.ci95": [0.52, 0.70],
            "mia_pairs": 40,
            "retrain_rank_gap@20": 0.3,
            "seed_floor@20": 0.2,
            "rank_gap_over_floor@20": 1.5,
        },
        {
            **fake_record(1, "receraser", 0, 0.3, 1.0),
            "untouched_shards": 2,
            "exact_gap": 0.0,
            "mia_auc.after": 0.55,
            "mia_auc.after.ci95": [0.53, 0.57],
            "mia_pairs": 4000,
        },
    ]
    for r in recs:
        d = tmp_path / "runs" / r["run_id"]
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(r))
    report(str(tmp_path))
    md = (tmp_path / "tables" / "completeness.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert {
        "untouched shards",
        "exact gap",
        "rank gap@20 retained",
        "seed floor@20 retained",
        "gap/floor@20 retained",
    } <= set(cols)
    row = {
        m: [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        for m in ("sisa", "receraser")
        if line.startswith(f"| {m} ")
    }
    gap = cols.index("exact gap")
    assert row["sisa"][gap] == "-" and row["receraser"][gap].strip("*") == "0"
    assert row["sisa"][cols.index("untouched shards")] == "0"  # a count, printed as one
    assert "untouched shards = 0" in md  # the footnote
    mia = cols.index("MIA AUC after")
    assert row["sisa"][mia] == "0.610 [0.520, 0.700] †" and row["receraser"][mia] == "0.550 [0.530, 0.570]"


def test_a_setting_only_some_methods_have_still_keeps_their_variants_apart(tmp_path):
    """Two variants of one method that differ in a setting other methods lack (NaN for them) are
    two rows, not one average."""
    recs = [
        {**fake_record(0, "ultrare", 0, 0.3, 1.0), "cfg.method.partition_refresh": "keep"},
        {**fake_record(1, "ultrare", 0, 0.1, 1.0), "cfg.method.partition_refresh": "rebuild"},
        {**fake_record(2, "sisa", 0, 0.2, 1.0), "cfg.aggregator.reg": 0.1},
        {**fake_record(3, "sisa", 0, 0.2, 1.0), "cfg.aggregator.reg": 0.2},
    ]
    for r in recs:
        d = tmp_path / "runs" / r["run_id"]
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(r))
    report(str(tmp_path))
    csv = (tmp_path / "tables" / "utility.csv").read_text().splitlines()
    assert "cfg.method.partition_refresh" in csv[0] and len(csv) == 5


def test_per_request_health_becomes_the_share_of_requests_where_it_held(tmp_path):
    """A stream whose second and third requests moved nothing is read as 2/3 unchanged; a request
    without a report (None) does not count."""
    from benchmarks.records_load import load_records

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    rec = {
        "status": "ok",
        "unlearn.params_touched.per_request": [128, 0, 0, None],
        "unlearn.converged.per_request": [True, False, True],
        "unlearn.damping_retries.per_request": [0, 2, 0, 0],
    }
    (run / "result.json").write_text(json.dumps(rec))
    df, _ = load_records(tmp_path)
    assert df["unlearn.unchanged_share"].iloc[0] == pytest.approx(2 / 3)
    assert df["unlearn.converged_share"].iloc[0] == pytest.approx(2 / 3)
    assert df["unlearn.damped_share"].iloc[0] == pytest.approx(1 / 4)


def test_a_residual_promotion_under_the_lift_floor_reads_as_nothing(tmp_path):
    """An attack that lifted its targets by less than the floor says nothing about what unlearning
    left; a record written before the run applied the floor is read by the same rule."""
    from benchmarks.records_load import load_records

    for name, lift in (("weak", 0.0035), ("strong", 0.0315)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        rec = {"status": "ok", "run": name, "attack_lift@50": lift, "residual_promotion@50": -0.2}
        (run / "result.json").write_text(json.dumps(rec))
    df, _ = load_records(tmp_path)
    got = dict(zip(df["run"], df["residual_promotion@50"]))
    assert got["strong"] == -0.2 and pd.isna(got["weak"])
