"""Slow end-to-end sweeps through Hydra's launchers, then the reporter (subprocesses)."""
import pytest

from .helpers import FAST, cli, records

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_two_job_sweep_then_report(tmp_path, launcher):
    extra = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
                                "hydra.launcher.cpus_per_task=1"]}[launcher]
    proc = cli("benchmarks.run", "-m", "method=retrain,sisa", "partitioner.n_shards=3", *FAST, *extra,
               results=tmp_path, timeout=900)
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


def test_sweep_goes_on_past_a_failed_job(tmp_path):
    proc = cli("benchmarks.run", "-m", "submodel.optimizer=nosuch,adam", *FAST, results=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(r["status"] for r in records(tmp_path)) == ["failed", "ok"]


def test_smoke_experiment_on_a_real_dataset(tmp_path):
    """The `make bench` sweep (every method), one seed."""
    proc = cli("benchmarks.run", "-m", "experiment=smoke", "seed=0", "runtime.progress=false",
               results=tmp_path, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = records(tmp_path)
    assert len(recs) == 5 and all(r["status"] == "ok" and r["dataset"] == "ml100k" for r in recs)
    assert all(r["exact_gap"] == 0.0 for r in recs if r["method"] in ("sisa", "receraser", "ultrare"))
    assert all(r["after.recall@20"] > 0.05 for r in recs)


TINY_RECERASER = ["dataset=synthetic", "seed=0", "submodel.epochs=3", "++aggregator.epochs=3",
                  "++partitioner.embedding.epochs=3", "runtime.progress=false", "runtime.threads=1"]


def test_receraser_paper_tables_from_a_clean_results_dir(tmp_path):
    """The three RecEraser paper commands, pointed at the synthetic dataset with one seed and a few
    epochs, write their tables and the partition figure into an empty results directory; the
    time table reuses the utility runs (same run ids: skipped, not rerun)."""
    for name in ("receraser_utility", "receraser_time", "receraser_partition"):
        proc = cli("benchmarks.table", name, f"results_dir={tmp_path}", *TINY_RECERASER, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / "tables" / f"{name}.{ext}").stat().st_size > 0
    recs = records(tmp_path)
    assert all(r["status"] == "ok" and r["dataset"] == "synthetic" for r in recs)
    # utility: 3 methods x 3 sub-models; partition: 4 partitioners x 3 K (K = 10 ubp is a utility run)
    assert len(recs) == 9 + 11
    assert {(r["method"], r["submodel"]) for r in recs} >= {
        (m, s) for m in ("retrain", "sisa", "receraser") for s in ("bpr", "wmf", "lightgcn")}
    assert all(r["exact_gap"] == 0.0 for r in recs if r["method"] != "retrain")
    utility = (tmp_path / "tables" / "receraser_utility.csv").read_text()
    assert "lightgcn" in utility and "wmf" in utility and "receraser" in utility
    assert "fit.aggregator_s" in (tmp_path / "tables" / "receraser_time.csv").read_text()
    for stem in ("receraser_partition", "receraser_partition_unlearn_s"):  # utility and cost vs K
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{stem}.{ext}").stat().st_size > 0
