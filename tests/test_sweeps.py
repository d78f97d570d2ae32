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
