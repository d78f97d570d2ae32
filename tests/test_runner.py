"""The runner end to end in a subprocess: records, skipping, failures and bad input."""

import pytest

from .helpers import FAST, cli, records

SPEC_KEYS = [
    "run_id", "status", "dataset", "n_users", "n_items", "n_train", "n_test", "method", "partitioner", "submodel",
    "aggregator", "n_shards", "deletion.unit", "deletion.selection", "deletion.ratio", "deletion.rounds", "n_forget",
    "n_forget_users", "seed", "device", "before.recall@20", "after.recall@20", "retrain.recall@20",
    "after.ndcg@20.active", "fit_s", "unlearn_s", "retrain_s", "speedup", "shards_retrained", "peak_rss_mb",
    "unlearn.shards_s", "unlearn.aggregator_s", "exact_gap", "retrain_gap", "mia_auc.before", "mia_auc.after",
    "mia_auc.retrain", "forget_hit@20.before", "forget_hit@20.after", "forget_hit@20.retrain",
    "partition_uses_forget", "git_commit", "git_dirty", "versions", "cpu", "gpu", "started_at", "wall_s", "shard_sizes",
]
TIMING = ("_s", "speedup", "wall_s", "started_at", "peak_rss_mb", "retrain_cached", "unlearn.request_s", "git_dirty", "git_commit")


@pytest.fixture(scope="module")
def sisa_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    proc = cli("benchmarks.run", "method=sisa", "partitioner.n_shards=3", *FAST, results=results)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results, proc


def test_record_has_every_spec_key(sisa_run):
    results, _ = sisa_run
    (rec,) = records(results)
    missing = [k for k in SPEC_KEYS if k not in rec]
    assert not missing, missing
    assert rec["status"] == "ok" and rec["exact_gap"] == 0.0 and rec["n_shards"] == 3
    assert len(rec["shard_sizes"]) == 3 and rec["n_forget_users"] == 15
    run_dir = next(results.glob("runs/*"))
    assert {p.name for p in run_dir.iterdir()} == {"result.json", "config.yaml", "manifest.json"}


def test_rerun_skips_and_force_reruns_identically(sisa_run):
    results, _ = sisa_run
    first = records(results)[0]
    skip = cli("benchmarks.run", "method=sisa", "partitioner.n_shards=3", *FAST, results=results)
    assert skip.returncode == 0 and "skipping" in skip.stderr + skip.stdout
    assert records(results)[0]["started_at"] == first["started_at"]
    again = cli("benchmarks.run", "method=sisa", "partitioner.n_shards=3", "force=true", *FAST, results=results)
    assert again.returncode == 0, again.stderr[-2000:]
    second = records(results)[0]
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith(TIMING) and k not in TIMING}
    assert strip(first) == strip(second)


def test_run_id_ignores_paths_and_device(sisa_run, tmp_path):
    results, _ = sisa_run
    rid = records(results)[0]["run_id"]
    proc = cli("benchmarks.run", "method=sisa", "partitioner.n_shards=3", *FAST, "runtime.eval_batch=7",
               results=tmp_path / "elsewhere")
    assert proc.returncode == 0
    assert records(tmp_path / "elsewhere")[0]["run_id"] == rid


def test_retrain_run_is_its_own_oracle(tmp_path):
    proc = cli("benchmarks.run", "method=retrain", *FAST, results=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = records(tmp_path)
    assert rec["retrain_gap"] == 0.0 and rec["after.ndcg@20"] == rec["retrain.ndcg@20"]
    assert list((tmp_path / "cache" / "oracle").glob("*.pt"))


@pytest.mark.parametrize("args, message", [
    (["method=nosuch"], "Could not find 'method/nosuch'"),
    (["method.name=nosuch"], "Unknown method 'nosuch'. Valid methods: "),
    (["method=sisa", "aggregator=none"], "aggregator=none serves a single model"),
    (["deletion.ratio=1.5"], "deletion.ratio must lie in (0, 1)"),
    (["deletion.ratio=null", "deletion.count=100000"], "deletion.count=100000 must be between 1"),
    (["method=sisa", "partitioner.n_shards=5000"], "n_shards=5000 is larger than the number of users"),
    (["dataset=gowalla", "dataset.folder=no-such-folder"], "missing"),
    (["runtime=gpu"], "CUDA"),
])
def test_bad_input_exits_nonzero_with_one_message_and_writes_nothing(tmp_path, args, message):
    base = [a for a in FAST if not any(a.split("=")[0] == b.split("=")[0] for b in args)]
    if any(a.startswith("dataset=") for a in args):
        base = [a for a in base if not a.startswith("dataset=")]
    proc = cli("benchmarks.run", *base, *args, results=tmp_path)
    if message == "CUDA" and proc.returncode == 0:
        pytest.skip("a CUDA device is present")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("runs/*/result.json"))
    assert not list(tmp_path.glob("cache/**/*.tmp"))


def test_corrupt_data_file_is_reported(tmp_path):
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t2\t3\t4\n")
    proc = cli("benchmarks.run", *[a for a in FAST if not a.startswith("dataset=")], "dataset=ml100k",
               results=tmp_path / "res", env={"UNLEARN_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode != 0 and "Checksum mismatch" in proc.stderr and "u.data" in proc.stderr
    assert not list((tmp_path / "res").glob("runs/*"))


def test_failure_while_running_writes_a_failed_record(tmp_path):
    # an optimiser name is only resolved when a shard starts training: a failure mid-run
    proc = cli("benchmarks.run", *FAST, "submodel.optimizer=nosuch", results=tmp_path)
    assert proc.returncode == 1
    (rec,) = records(tmp_path)
    assert rec["status"] == "failed" and "nosuch" in rec["error"]
    ok = cli("benchmarks.run", *FAST, results=tmp_path)  # a different config still runs
    assert ok.returncode == 0


def test_sweep_runs_past_a_refused_job_and_exits_nonzero(tmp_path):
    proc = cli("benchmarks.run", "-m", "deletion.ratio=1.5,0.05", *FAST, results=tmp_path)
    assert proc.returncode == 2
    assert "1 job(s) of the sweep were refused" in proc.stderr and "deletion.ratio must lie in (0, 1)" in proc.stderr
    assert [r["status"] for r in records(tmp_path)] == ["ok"]
