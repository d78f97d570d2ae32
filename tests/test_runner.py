"""The runner: records, skipping, failures and bad input. Runs compose their config with Hydra
in-process and call `benchmarks.run.execute`, the CLI's own entry; the multirun path (`-m`, exit
code at the end of a sweep) runs as a subprocess, as a user runs it."""

import logging

import pytest
import torch

from benchmarks.records import run_id

from .helpers import CLI_TIMEOUT, FAST, MARGIN, cli, compose_run, records, run_config

pytestmark = pytest.mark.usefixtures("hydra_conf")

SPEC_KEYS = [
    "run_id",
    "status",
    "dataset",
    "n_users",
    "n_items",
    "n_train",
    "n_test",
    "method",
    "partitioner",
    "submodel",
    "aggregator",
    "n_shards",
    "deletion.unit",
    "deletion.selection",
    "deletion.ratio",
    "deletion.rounds",
    "n_forget",
    "n_forget_users",
    "seed",
    "device",
    "before.recall@20",
    "after.recall@20",
    "retrain.recall@20",
    "after.ndcg@20.active",
    "fit_s",
    "unlearn_s",
    "retrain_s",
    "speedup",
    "shards_retrained",
    "peak_rss_mb",
    "unlearn.shards_s",
    "unlearn.aggregator_s",
    "exact_gap",
    "retrain_gap",
    "mia_auc.before",
    "mia_auc.after",
    "mia_auc.retrain",
    "forget_hit@20.before",
    "forget_hit@20.after",
    "forget_hit@20.retrain",
    "partition_uses_forget",
    "git_commit",
    "git_dirty",
    "versions",
    "cpu",
    "gpu",
    "started_at",
    "wall_s",
    "shard_sizes",
]
TIMING = (
    "_s",
    "speedup",
    "wall_s",
    "started_at",
    "peak_rss_mb",
    "retrain_cached",
    "unlearn_s.per_request",
    "unlearn_s.p50",
    "unlearn_s.p95",
    "git_dirty",
    "git_commit",
    "speedup.cpu",
    "speedup.basis",
    "speedup.floored",
    "calibration.drift",
    "retrain_s.measured",
    "load_avg.start",
    "load_avg.end",
)
# one user deleted: one of the 3 shards is retrained, so exact_gap can fail
SISA = ["method=sisa", "partitioner.n_shards=3", "deletion.ratio=null", "deletion.count=1", *FAST]


@pytest.fixture(scope="module")
def sisa_run(hydra_conf, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    record = compose_run(SISA, results)
    assert record is not None and record["status"] == "ok", record
    return results, record


def test_record_has_every_spec_key(sisa_run):
    results, returned = sisa_run
    (rec,) = records(results)
    assert rec == returned  # the file holds what the run returned
    missing = [k for k in SPEC_KEYS if k not in rec]
    assert not missing, missing
    assert rec["status"] == "ok" and rec["exact_gap"] == 0.0 and rec["n_shards"] == 3
    assert rec["untouched_shards"] == 2 and rec["n_shards_retrained"] == 1
    assert len(rec["shard_sizes"]) == 3 and rec["n_forget_users"] == 1
    assert rec["unlearn_s.per_request"] == [rec["unlearn_s"]] and rec["unlearn_s.p50"] == rec["unlearn_s"]
    run_dir = next(results.glob("runs/*"))
    assert {p.name for p in run_dir.iterdir()} == {"result.json", "config.yaml", "manifest.json"}


def test_exact_gap_is_null_when_every_shard_was_retrained(hydra_conf, tmp_path):
    """5% of users against 3 user shards touches every shard: the replica would repeat the
    unlearned model's computation, so no replica is fitted and exact_gap is null, never 0."""
    rec = compose_run(["method=sisa", "partitioner.n_shards=3", *FAST], tmp_path)
    assert rec["untouched_shards"] == 0 and rec["n_shards_retrained"] == 3
    assert rec["exact_gap"] is None and "exact_replica_s" not in rec


def test_a_stream_of_single_user_requests_records_each_latency(hydra_conf, tmp_path):
    rec = compose_run(
        ["method=sisa", "partitioner.n_shards=3", "deletion=users_stream", "deletion.rounds=4", *FAST], tmp_path
    )
    assert rec["deletion.rounds"] == 4 and rec["n_forget_users"] == 4
    assert len(rec["unlearn_s.per_request"]) == 4
    assert sum(rec["unlearn_s.per_request"]) == pytest.approx(rec["unlearn_s"])
    assert min(rec["unlearn_s.per_request"]) <= rec["unlearn_s.p50"] <= rec["unlearn_s.p95"]


def test_rerun_skips_and_force_reruns_identically(sisa_run, caplog):
    results, _ = sisa_run
    first = records(results)[0]
    with caplog.at_level(logging.INFO, logger="benchmarks.run"):
        assert compose_run(SISA, results) is None
    assert "skipping" in caplog.text
    assert records(results)[0]["started_at"] == first["started_at"]
    again = compose_run([*SISA, "force=true"], results)
    assert again["status"] == "ok"
    second = records(results)[0]
    assert second["started_at"] != first["started_at"]  # really rerun
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith(TIMING) and k not in TIMING}
    assert strip(first) == strip(second)


def test_run_id_ignores_paths_and_device(sisa_run, tmp_path):
    results, rec = sisa_run
    elsewhere = run_config(
        [
            *SISA,
            "runtime=gpu",
            "runtime.eval_batch=7",
            "force=true",
            f"cache_dir={tmp_path}/c",
            "plugins=[some_module]",
        ],
        tmp_path / "elsewhere",
    )
    assert run_id(elsewhere) == rec["run_id"]
    assert run_id(run_config([*SISA, "seed=1"], results)) != rec["run_id"]  # but not what it computes
    assert run_id(run_config([*SISA, "submodel.dim=8"], results)) != rec["run_id"]


@pytest.mark.parametrize("deletion", ["users_random", "users_stream"])
def test_retrain_run_is_its_own_oracle(tmp_path, deletion):
    """Retrain unlearned (after the last request of a stream too) is the oracle: not fitted again,
    and its seconds are the oracle's (one fit on train minus F)."""
    rec = compose_run(["method=retrain", f"deletion={deletion}", *FAST], tmp_path)
    assert rec["retrain_gap"] == 0.0 and rec["after.ndcg@20"] == rec["retrain.ndcg@20"]
    assert rec["retrain_s"] == rec["unlearn_s.per_request"][-1] and not rec["retrain_cached"]
    assert list((tmp_path / "cache" / "oracle").glob("*.pt"))


def test_unknown_option_file_is_refused_by_hydra(tmp_path):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="Could not find 'method/nosuch'"):
        compose_run([*FAST, "method=nosuch"], tmp_path)


def refused(capsys, tmp_path, args, message):
    """A user error: exit code 2 before training, one `error: ...` line naming it, nothing written."""
    with pytest.raises(SystemExit) as exc:
        compose_run(args, tmp_path)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], err[-2000:]
    assert "Traceback" not in err
    assert not list(tmp_path.glob("runs/*"))
    assert not list(tmp_path.glob("cache/**/*.tmp"))
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["method.name=nosuch"], "Unknown method 'nosuch'. Valid methods: "),
        (["method=sisa", "aggregator=none"], "aggregator=none serves a single model"),
        (["deletion.ratio=1.5"], "deletion.ratio must lie in (0, 1)"),
        (["deletion.ratio=null", "deletion.count=100000"], "deletion.count=100000 must be between 1"),
        (["method=sisa", "partitioner.n_shards=5000"], "n_shards=5000 is larger than the number of users"),
        (["dataset=gowalla", "dataset.folder=no-such-folder"], "missing"),
        (["runtime=gpu"], "CUDA"),
        (["plugins=[no_such_module_xyz]"], "Cannot import plugin module 'no_such_module_xyz'"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(capsys, tmp_path, args, message):
    if message == "CUDA" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    keys = {a.split("=")[0] for a in args}
    base = [a for a in FAST if a.split("=")[0] not in keys]
    if any(a.startswith("dataset=") for a in args):
        base = [a for a in base if not a.startswith("dataset=")]
    line = refused(capsys, tmp_path, [*base, *args], message)
    if message.startswith("Unknown method"):
        assert "retrain" in line and "sisa" in line  # the valid names are listed


def test_corrupt_data_file_is_reported(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t2\t3\t4\n")
    monkeypatch.setenv("UNLEARN_DATA_DIR", str(tmp_path / "data"))
    line = refused(
        capsys,
        tmp_path / "res",
        [*[a for a in FAST if not a.startswith("dataset=")], "dataset=ml100k"],
        "Checksum mismatch",
    )
    assert "u.data" in line


def test_failure_while_running_writes_a_failed_record(capsys, tmp_path):
    # an optimiser name is only resolved when a shard starts training: a failure mid-run
    with pytest.raises(SystemExit) as exc:
        compose_run([*FAST, "submodel.optimizer=nosuch"], tmp_path)
    assert exc.value.code == 1
    assert "error: run failed:" in capsys.readouterr().err
    (rec,) = records(tmp_path)
    assert rec["status"] == "failed" and "nosuch" in rec["error"]
    assert compose_run(FAST, tmp_path)["status"] == "ok"  # a different config still runs


@pytest.mark.timeout(CLI_TIMEOUT + MARGIN)
def test_sweep_runs_past_a_refused_job_and_exits_nonzero(tmp_path):
    """`-m`, the launcher and the callback's exit code, for a job refused once its data is loaded."""
    proc = cli("benchmarks.run", "-m", "deletion.ratio=1.5,0.05", *FAST, results=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "1 job(s) of the sweep were refused" in proc.stderr and "deletion.ratio must lie in (0, 1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r["status"] for r in records(tmp_path)] == ["ok"]


@pytest.mark.timeout(CLI_TIMEOUT + MARGIN)
def test_a_sweep_with_an_incompatible_job_runs_nothing(tmp_path):
    """A job no method accepts is refused before the sweep launches any job, its reason once."""
    proc = cli("benchmarks.run", "-m", "method=sisa,unlearn_als", "submodel=bpr", *FAST, results=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("method=unlearn_als cannot use submodel=bpr") == 1
    assert "1 of the sweep's jobs would be refused; nothing was run" in proc.stderr
    assert "Traceback" not in proc.stderr and records(tmp_path) == []


@pytest.mark.timeout(100)
def test_a_subprocess_that_could_outlive_its_test_is_refused_before_it_starts():
    """The budget check reads the test's own timeout marker: 100 s cannot hold a 300 s subprocess."""
    from . import helpers

    assert helpers.BUDGET["limit"] == 100
    with pytest.raises(AssertionError, match="exceeds its pytest timeout of 100"):
        helpers.cli("benchmarks.run", "--help", timeout=300)


def test_a_test_without_a_marker_gets_the_configured_timeout():
    from . import helpers

    assert helpers.BUDGET["limit"] == 300  # pyproject's [tool.pytest.ini_options] timeout
