"""The performance benchmarks run and check what they compare (no wall time is asserted)."""

import json

import pytest


def test_partitioning_benchmark_agrees_with_the_released_walk(tmp_path):
    from benchmarks.perf.partitioning import main

    res = main(["--dataset", "synthetic", "--ks", "3", "7", "--repeats", "1", "--results-dir", str(tmp_path)])
    rows = res["rows"]
    assert [(r["partitioner"], r["K"]) for r in rows] == [(p, k) for p in ("ubp", "ibp", "inbp") for k in (3, 7)]
    assert all(r["agree"] and r["largest"] <= r["capacity"] for r in rows)
    assert json.loads((tmp_path / "perf" / "partitioning.json").read_text())["rows"] == json.loads(json.dumps(rows))
    assert "released walk" in (tmp_path / "perf" / "partitioning.md").read_text()


def test_clustering_benchmark_times_the_clustering_alone(tmp_path):
    """Embeddings come from the cache, whose recorded training seconds must not be subtracted
    from the clustering time (that gave negative seconds)."""
    from benchmarks.perf.clustering import main

    df = main(["--dataset", "synthetic", "--ks", "2", "--repeats", "1", "--results-dir", str(tmp_path)])
    assert len(df) == 4 and (df["seconds"] > 0).all()
    emd = df[df["partitioner"] == "ot (emd)"].iloc[0]
    assert emd["largest"] - emd["smallest"] <= 1


def test_evaluation_benchmark_agrees_with_its_peers_and_records_memory(tmp_path):
    from benchmarks.perf.evaluation import main

    rec = main(
        [
            "--datasets",
            "synthetic",
            "--peers-on",
            "synthetic",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    (row,) = rec["rows"]
    assert len(set(round(v, 6) for v in row["recall@20"].values())) == 1  # ours, RecBole-style, NumPy loop
    assert row["peak_rss_mb"] is None or row["peak_rss_mb"] >= row["peak_added_mb"] >= 0
    line = json.loads((tmp_path / "evaluation.jsonl").read_text().splitlines()[-1])
    assert (
        line["benchmark"] == "evaluation"
        and line["machine"]["threads"] == 1
        and line["rows"][0]["dataset"] == "synthetic"
    )


def test_bpr_benchmark_times_both_and_the_summary_reads_the_latest_record(tmp_path):
    from benchmarks.perf.bpr_vs_implicit import main
    from benchmarks.perf.summary import main as summary

    rec = main(
        [
            "--dataset",
            "synthetic",
            "--epochs",
            "2",
            "--eval-every",
            "1",
            "--threads",
            "1",
            "--optimizers",
            "adam",
            "adagrad",
            "--out",
            str(tmp_path),
        ]
    )
    assert rec["epoch_s_ours"] > 0 and rec["epoch_s_implicit"] > 0
    assert set(rec["ours"]) == {f"{o}/{g}" for o in ("adam", "adagrad") for g in ("analytic", "autograd")}
    assert all(len(c) == 2 for c in rec["curve"].values())
    for o in ("adam", "adagrad"):  # the closed-form step trains the model autograd trains (to rounding)
        assert abs(rec["ours"][f"{o}/analytic"]["ndcg@20"] - rec["ours"][f"{o}/autograd"]["ndcg@20"]) < 1e-3
    text = summary(["--out", str(tmp_path), "--record-bench", "123"])
    assert "a BPR epoch <= 1.5x implicit's" in text and f"{rec['ratio']:.2f}" in text
    assert "`make bench` under 10 minutes | 2.0 min" in text
    assert "not measured (`python -m benchmarks.perf.methods`)" in text
    assert (tmp_path / "summary.md").read_text() == text


def test_eemu_benchmark_times_both_updates_and_both_adaptations(tmp_path):
    from benchmarks.perf.eemu import main

    rec = main(
        [
            "--dataset",
            "synthetic",
            "--submodel",
            "twotower_small",
            "--n-shards",
            "3",
            "--eval-users",
            "0",
            "5",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert set(rec["meta_epoch_s"]) == {"sequential", "batched"} and all(s > 0 for s in rec["meta_epoch_s"].values())
    ut, al = rec["evaluation"]["user_tower"], rec["evaluation"]["all"]
    assert ut["users_timed"] == rec["n_users"] and not ut["extrapolated"]
    assert al["users_timed"] == 5 and al["extrapolated"]
    for e in (ut, al):  # every (user, shard) pair costs the same: the estimate scales the timed pairs
        assert abs(e["full_eval_s"] - e["ms_per_user_shard"] / 1000 * rec["n_users"] * 3) < 1e-9
    line = json.loads((tmp_path / "eemu.jsonl").read_text().splitlines()[-1])
    assert line["benchmark"] == "eemu" and "ratio sequential/batched" in (tmp_path / "eemu.md").read_text()


def test_bpr_benchmark_compares_the_row_restricted_steps_with_the_dense_ones_on_a_shard(tmp_path):
    """RecEraser's released preset (Adagrad) and Adam, on one shard's users: the default
    row-restricted steps and the optimisers' dense steps side by side train the same model."""
    from benchmarks.perf.bpr_vs_implicit import main
    from benchmarks.perf.common import load_named_dataset

    rec = main(
        [
            "--dataset",
            "synthetic",
            "--submodel",
            "bpr_receraser",
            "--optimizers",
            "adagrad",
            "adam",
            "--grads",
            "analytic",
            "analytic-dense",
            "--user-share",
            "0.5",
            "--epochs",
            "2",
            "--eval-every",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rec["submodel"] == "bpr_receraser" and rec["lr"] == 0.05 and rec["user_share"] == 0.5
    full = load_named_dataset("synthetic", None)
    assert 0.3 * len(full.train) < rec["n_train"] < 0.7 * len(full.train)  # about half the users' rows
    for opt in ("adagrad", "adam"):
        rows, dense = rec["ours"][f"{opt}/analytic"], rec["ours"][f"{opt}/analytic-dense"]
        assert abs(rows["ndcg@20"] - dense["ndcg@20"]) < 1e-6 and rows["epoch_s"] > 0 and dense["epoch_s"] > 0


def test_bpr_benchmark_target_counts_only_epochs_that_learn(tmp_path):
    """An epoch of a setting that never reaches implicit's NDCG@20 is no evidence for the target:
    with --set lr=0 ours does not move, the record says so and the summary does not call it met."""
    from benchmarks.perf.bpr_vs_implicit import main
    from benchmarks.perf.summary import main as summary

    rec = main(
        [
            "--dataset",
            "synthetic",
            "--epochs",
            "2",
            "--eval-every",
            "2",
            "--threads",
            "1",
            "--grads",
            "analytic",
            "--set",
            "lr=0",
            "--set",
            "init_std=0.1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rec["settings"]["lr"] == 0 and rec["settings"]["init_std"] == 0.1
    assert rec["ours"]["adam/analytic"]["reach_implicit_ndcg"] is None and not rec["fastest_reaches_implicit"]
    assert "not evidence" in (tmp_path / "bpr_vs_implicit.md").read_text()
    row = next(line for line in summary(["--out", str(tmp_path)]).splitlines() if "a BPR epoch" in line)
    assert "not evidence" in row and "| **no** |" in row
    with pytest.raises(SystemExit):
        main(["--dataset", "synthetic", "--epochs", "1", "--set", "no_such_key=1", "--out", str(tmp_path)])


def test_timer_interleaves_contenders_and_keeps_warmup_and_setup_out_of_the_timing():
    from benchmarks.perf.harness import Contender, Timer

    calls, rounds = [], []

    def contender(name, seconds):
        it = iter(seconds)
        return Contender(
            name,
            step=lambda state: calls.append((name, state)) or next(it),
            setup=lambda: calls.append((name, "setup")) or f"{name}-state",
            score=lambda state, out: (state, out),
            clock=lambda out: out,
        )

    timer = Timer([contender("a", [9.0, 1.0, 2.0, 3.0]), contender("b", [9.0, 2.0, 4.0, 8.0])])
    timer.run(3, warmup=1, after=lambda r, t: rounds.append((r, {n: len(t.times[n]) for n in t.names})))
    assert [c for c in calls if c[1] == "setup"] == [("a", "setup"), ("b", "setup")]
    assert [c[0] for c in calls if c[1] != "setup"] == ["a", "b"] * 4  # one warm-up round, then three timed
    assert rounds == [(r, {"a": r, "b": r}) for r in (1, 2, 3)]
    assert timer.times == {"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 8.0]}  # the warm-up's 9 s is not timed
    assert timer.median("a") == 2.0 and timer.median("b") == 4.0 and timer.ratio("a", "b") == 0.5
    assert timer.median("b", skip=1) == 6.0 and timer.ratio("a", "b", skip=1) == 2.5 / 6.0
    assert timer.spread("b") == 3.0 and timer.best("b") == 2.0 and timer.total("b") == 14.0
    assert timer.score("a") == ("a-state", 3.0) and set(timer.setup_s) == {"a", "b"}
    with pytest.raises(ValueError):
        Timer([Contender("a", print), Contender("a", print)])


def test_publish_appends_records_that_the_summary_reads(tmp_path):
    import numpy as np

    from benchmarks.perf.harness import publish
    from benchmarks.perf.summary import latest, machine_text, summary

    row = {"dataset": "ml1m_cure4rec", "recunlearn_s": np.float64(0.125), "peak_added_mb": None}
    for seconds in (0.5, 0.125):  # two runs: the summary reads the latest
        rec = {"k": 20, "rows": [{**row, "recunlearn_s": np.float64(seconds)}]}
        path = publish(tmp_path, "evaluation", rec, threads=3, markdown="# evaluation\n", snapshot=True)
    assert len(path.read_text().splitlines()) == 2
    line = latest(tmp_path, "evaluation")
    assert line["benchmark"] == "evaluation" and line["rows"][0]["recunlearn_s"] == 0.125
    assert line["machine"]["threads"] == 3 and {"cpu", "n_cpus", "load", "git_commit", "at"} <= set(line["machine"])
    assert json.loads((tmp_path / "evaluation.json").read_text()) == {"k": 20, "rows": [{**row, "recunlearn_s": 0.125}]}
    assert (tmp_path / "evaluation.md").read_text() == "# evaluation\n"
    text = summary(tmp_path)
    target = next(t for t in text.splitlines() if "full-ranking evaluation, ml1m_cure4rec" in t)
    assert "| 0.125 s | 0.50 | yes |" in target and machine_text(line["machine"]) in target


def test_als_benchmark_solves_the_same_problem_as_implicit(tmp_path):
    from benchmarks.perf.als_vs_implicit import main

    res = main(["--dataset", "synthetic", "--sweeps", "2", "--threads", "1", "--out", str(tmp_path)])
    for pair in res["pairs"].values():
        assert len(pair["sweep_times_ours"]) == len(pair["sweep_times_implicit"]) == 2
        assert pair["ratio"] == pair["sweep_s_ours"] / pair["sweep_s_implicit"]
        assert pair["first_half_max_abs_diff"] <= 1e-4 * pair["first_half_max_abs"]
        assert abs(pair["ndcg@20_rel_diff"]) < 0.01
    assert (
        json.loads((tmp_path / "als_vs_implicit.jsonl").read_text())["pairs"]
        == json.loads((tmp_path / "als_vs_implicit.json").read_text())["pairs"]
    )


def test_aggregator_benchmark_fits_every_schedule_on_the_same_shards(tmp_path):
    from benchmarks.perf.aggregator import main

    main(
        ["--dataset", "synthetic", "--seeds", "0", "--k", "2", "--schedules", "batch", "entity", "--out", str(tmp_path)]
    )
    (line,) = (json.loads(x) for x in (tmp_path / "aggregator.jsonl").read_text().splitlines())
    assert [r["schedule"] for r in line["rows"]] == ["batch", "entity"]
    assert all(r["aggregator_s"] > 0 and r["shard_fit_s"] > 0 and 0 < r["ndcg@20"] <= 1 for r in line["rows"])
    assert len({r["shard_fit_s"] for r in line["rows"]}) == 1 and "entity" in (tmp_path / "aggregator.md").read_text()
