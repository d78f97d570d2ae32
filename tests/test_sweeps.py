"""Slow end-to-end sweeps through Hydra's launchers, then the reporter (subprocesses). Each
subprocess timeout is generous for a loaded 2-core CI machine, and each test's pytest timeout
exceeds the sum of its subprocess timeouts (checked by tests.helpers.cli)."""

import pytest
import yaml

from .helpers import CLI_TIMEOUT, FAST, MARGIN, ROOT, cli, records

pytestmark = pytest.mark.slow

SWEEP = 1200  # a two-job synthetic sweep, or one RecEraser table's runs
SMOKE = 3600  # experiment=smoke, one seed, the stream: seven runs on ML-100K


@pytest.mark.timeout(SWEEP + CLI_TIMEOUT + MARGIN)
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_two_job_sweep_then_report(tmp_path, launcher):
    extra = {
        "basic": [],
        "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        "submitit_local": [
            "hydra/launcher=submitit_local",
            f"hydra.launcher.timeout_min={SWEEP // 60}",
            "hydra.launcher.cpus_per_task=1",
        ],
    }[launcher]
    proc = cli(
        "benchmarks.run",
        "-m",
        "method=retrain,sisa",
        "partitioner.n_shards=3",
        "deletion.ratio=null",
        "deletion.count=1",
        *FAST,
        *extra,
        results=tmp_path,
        timeout=SWEEP,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = records(tmp_path)
    assert sorted(r["method"] for r in recs) == ["retrain", "sisa"]
    assert all(r["status"] == "ok" for r in recs)
    sisa = next(r for r in recs if r["method"] == "sisa")
    assert sisa["exact_gap"] == 0.0
    rep = cli("benchmarks.report", f"results_dir={tmp_path}")
    assert rep.returncode == 0, rep.stderr
    for name in ("utility", "efficiency", "completeness"):
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert (tmp_path / "figures" / "utility_vs_time.png").is_file()
    assert (tmp_path / "figures" / "utility_vs_time.pdf").is_file()


@pytest.mark.timeout(SWEEP + MARGIN)
def test_sweep_goes_on_past_a_failed_job(tmp_path):
    proc = cli("benchmarks.run", "-m", "submodel.optimizer=nosuch,adam", *FAST, results=tmp_path, timeout=SWEEP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(r["status"] for r in records(tmp_path)) == ["failed", "ok"]


@pytest.mark.timeout(SMOKE + MARGIN)
def test_smoke_experiment_on_a_real_dataset(tmp_path):
    """The `make bench` sweep (every method), one seed, the stream of single-user requests (the
    regime where exact_gap is informative; the batch regime differs only in the forget set)."""
    # two jobs at a time, one thread each, as `make bench` runs them (half the wall time of one at a time)
    proc = cli(
        "benchmarks.run",
        "-m",
        "experiment=smoke",
        "seed=0",
        "deletion=users_stream",
        "runtime.progress=false",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "runtime.threads=1",
        results=tmp_path,
        timeout=SMOKE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = records(tmp_path)
    smoke = yaml.safe_load((ROOT / "conf" / "experiment" / "smoke.yaml").read_text())
    options = str(smoke["hydra"]["sweeper"]["params"]["method"]).split(",")  # presets, e.g. eemu_smoke
    methods = [yaml.safe_load((ROOT / "conf" / "method" / f"{o}.yaml").read_text())["name"] for o in options]
    assert sorted(r["method"] for r in recs) == sorted(methods)
    assert all(r["status"] == "ok" and r["dataset"] == "ml100k" and r["deletion.rounds"] == 3 for r in recs)
    assert all(len(r["unlearn_s.per_request"]) == 3 for r in recs)
    # the tuned presets of ML-100K (presets=tuned); EEMU runs the batch request only (smoke_eemu)
    assert {r["method"]: r["presets"] for r in recs} == {
        "retrain": "tuned/ml100k_bpr",
        "sisa": "tuned/ml100k_bpr",
        "receraser": "tuned/ml100k_bpr",
        "ultrare": "tuned/ml100k_bpr",
        "unlearn_als": "tuned/ml100k_als",
        "scif": "tuned/ml100k_bpr",
        "finetune": "tuned/ml100k_bpr",
    }
    exact = [r for r in recs if "untouched_shards" in r]
    assert exact and all(r["exact_gap"] == 0.0 if r["untouched_shards"] > 0 else r["exact_gap"] is None for r in exact)
    assert any(r["exact_gap"] == 0.0 for r in exact)  # single users leave shards untouched
    # every model learned something: at least twice a random ranker's Recall@20 (20 / n_items,
    # 0.012 on ML-100K)
    assert all(r["after.recall@20"] > 2 * 20 / r["n_items"] for r in recs)


TINY_RECERASER = [
    "dataset=synthetic",
    "seed=0",
    "submodel.epochs=3",
    "++aggregator.epochs=3",
    "++partitioner.embedding.epochs=3",
    "runtime.progress=false",
    "runtime.threads=1",
]


@pytest.mark.timeout(3 * SWEEP + MARGIN)
def test_receraser_paper_tables_from_a_clean_results_dir(tmp_path):
    """The three RecEraser paper commands, pointed at the synthetic dataset with one seed and a few
    epochs, write their tables and the partition figure into an empty results directory; the
    time table reuses the utility runs (same run ids: skipped, not rerun)."""
    for name in ("receraser_utility", "receraser_time", "receraser_partition"):
        proc = cli("benchmarks.table", name, f"results_dir={tmp_path}", *TINY_RECERASER, timeout=SWEEP)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / "tables" / f"{name}.{ext}").stat().st_size > 0
    recs = records(tmp_path)
    assert all(r["status"] == "ok" and r["dataset"] == "synthetic" for r in recs)
    # utility: 3 methods x 3 sub-models; partition study: 5 partitioners x 3 K, one run shared (ubp, K = 10)
    assert len(recs) == 9 + 14
    assert {(r["method"], r["submodel"]) for r in recs} >= {
        (m, s) for m in ("retrain", "sisa", "receraser") for s in ("bpr", "wmf", "lightgcn")
    }
    exact = [r for r in recs if r["method"] != "retrain"]
    assert all(r["exact_gap"] == 0.0 if r["untouched_shards"] > 0 else r["exact_gap"] is None for r in exact)
    utility = (tmp_path / "tables" / "receraser_utility.csv").read_text()
    assert "lightgcn" in utility and "wmf" in utility and "receraser" in utility
    assert "fit.aggregator_s" in (tmp_path / "tables" / "receraser_time.csv").read_text()
    for stem in ("receraser_partition", "receraser_partition_unlearn_s"):  # utility and cost vs K
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{stem}.{ext}").stat().st_size > 0
