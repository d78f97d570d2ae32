"""Sweeps through Hydra's submitit SLURM launcher against a running SLURM: the one-node cluster of
scripts/slurm-local.sh (root, Debian/Ubuntu; the module is skipped, with the reason, where it cannot
start one). Also the GPU choice of a job under SLURM (no GPU or cluster needed)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from unlearn.errors import ConfigError
from unlearn.runtime import Runtime, pick_gpu

from .helpers import FAST, ROOT, cli, records

SCRIPT = ROOT / "scripts" / "slurm-local.sh"
SLURM_DIR = Path(os.environ.get("RECUNLEARN_SLURM_DIR", "/tmp/recunlearn-slurm"))
# generous for a loaded 2-core machine: installing the packages, one small sweep, a queue draining
START_S, SWEEP_S, DRAIN_S = 600, 480, 300
SLURM = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.cpus_per_task=1",
]
SMALL = [*FAST, "submodel.epochs=3", "partitioner.n_shards=3"]
# keys that are wall times or describe the machine, and the oracle cache hit (order-dependent)
MACHINE_KEYS = {
    "git_commit",
    "git_dirty",
    "versions",
    "cpu",
    "gpu",
    "python",
    "started_at",
    "wall_s",
    "peak_rss_mb",
    "speedup",
    "retrain_cached",
    # which process trained the oracle, and the machine's load while each job ran
    "speedup.cpu",
    "speedup.basis",
    "speedup.floored",
    "calibration.drift",
    "load_avg.start",
    "load_avg.end",
}


@pytest.fixture(scope="module")
def slurm():
    """Env for commands talking to the local cluster; starts it when down and stops it afterwards
    (only when it started it here)."""
    env = {"SLURM_CONF": str(SLURM_DIR / "slurm.conf")}
    if sys.platform != "linux":
        pytest.skip("no local SLURM cluster: scripts/slurm-local.sh runs on Linux only")
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    started = False
    if status.returncode != 0:
        start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=START_S)
        if start.returncode != 0:
            reason = (start.stderr.strip().splitlines() or [f"exit {start.returncode}"])[-1]
            pytest.skip(f"no local SLURM cluster ({reason})")
        started = True
    yield env
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def _comparable(record: dict) -> dict:
    """Without wall times (`*_s`, and per-request latencies `unlearn_s.per_request` / `.p50` / `.p95`)."""
    return {
        k: v
        for k, v in record.items()
        if k not in MACHINE_KEYS and not k.endswith("_s") and "_s." not in k and not k.startswith("error")
    }


def _sweep_jobs(env: dict, marker: str) -> dict[str, str]:
    """{job id: state} of the jobs squeue lists whose batch script lies under `marker`."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i|%T|%o"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    ).stdout
    jobs = {}
    for line in out.splitlines():
        job, state, command = (line.split("|", 2) + ["", ""])[:3]
        if marker in command:
            jobs[job.strip()] = state.strip()
    return jobs


def _wait_queue_empty(env: dict, marker: str, limit_s: float) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if not any(s in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for s in _sweep_jobs(env, marker).values()):
            return
        time.sleep(1)
    raise AssertionError(f"jobs still queued after {limit_s}s: {_sweep_jobs(env, marker)}")


def _no_partial_files(results: Path) -> None:
    leftovers = [p for p in (results / "runs").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    for path in (results / "runs").glob("*/result.json"):
        json.loads(path.read_text())  # whole


@pytest.mark.timeout(START_S + 2 * SWEEP_S + 120)
@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_sweep_matches_the_basic_launcher(slurm, tmp_path):
    """A 2 x 2 sweep as SLURM jobs writes the records the basic launcher writes in-process; the
    progress bar reaches 4/4 and the missing accounting database is said once."""
    sweep = ["-m", "method=retrain,sisa", "seed=0,1", *SMALL]
    proc = cli("benchmarks.run", *sweep, *SLURM, results=tmp_path / "slurm", timeout=SWEEP_S, env=slurm)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "4/4" in out.replace("\r", "\n"), out[-3000:]
    # the local cluster keeps no accounting: said once, not on every status poll
    assert out.count("job states are read from squeue instead") == 1, out[-3000:]
    assert "Bypassing sacct error" not in out, out[-3000:]
    base = cli("benchmarks.run", *sweep, results=tmp_path / "basic", timeout=SWEEP_S)
    assert base.returncode == 0, base.stderr[-3000:]
    on_slurm, basic = records(tmp_path / "slurm"), records(tmp_path / "basic")
    assert len(on_slurm) == len(basic) == 4
    assert all(r["status"] == "ok" for r in on_slurm + basic)
    for a, b in zip(on_slurm, basic):
        a, b = _comparable(a), _comparable(b)
        assert a.keys() == b.keys()
        differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        assert not differ, f"run {a['run_id']}: {differ}"
    for recs in (on_slurm, basic):  # one oracle per seed, trained by exactly one run
        assert sorted(r["seed"] for r in recs if not r["retrain_cached"]) == [0, 1]


@pytest.mark.timeout(START_S + 2 * SWEEP_S + DRAIN_S + 120)
@pytest.mark.slow
@pytest.mark.slurm
def test_cancelled_job_leaves_no_record_and_a_rerun_completes_the_sweep(slurm, tmp_path):
    """scancel on a job while it runs: no half record, the sweep says so and exits non-zero; the
    rerun runs only the cancelled job (the finished record stays byte for byte, same mtime)."""
    # job #0 (sisa) is quick; job #1 (held_sisa, tests/plugins/held_method.py) waits while the hold
    # file exists, so it cannot finish inside the cluster's KillWait after scancel, however fast the
    # machine (a job that merely trained long raced that grace period on a fast CI machine); one job
    # at a time, so #0 has finished when #1 runs
    hold = tmp_path / "hold"
    hold.touch()
    sweep = ["-m", "method=sisa", "method.name=sisa,held_sisa", "plugins=[held_method]", "seed=0", *SMALL, *SLURM]
    plugins = f"{ROOT}:{ROOT / 'tests' / 'plugins'}"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        *sweep,
        "hydra.launcher.array_parallelism=1",
        f"results_dir={tmp_path}",
    ]
    env = {**os.environ, "PYTHONPATH": plugins, "RECUNLEARN_HOLD": str(hold), **slurm}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, cancelled = time.time() + SWEEP_S, None
        while cancelled is None and time.time() < deadline and proc.poll() is None:
            for job, state in _sweep_jobs(slurm, str(tmp_path)).items():
                log = next(tmp_path.glob(f"logs/**/.submitit/{job}/{job}_0_log.out"), None)
                if job.endswith("_1") and state == "RUNNING" and log and "holding while" in log.read_text():
                    subprocess.run(["scancel", job], check=True, timeout=60, env=env)
                    cancelled = job
            time.sleep(0.2)
        out, err = proc.communicate(timeout=SWEEP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert cancelled, f"job #1 never seen holding; sweep exit {proc.returncode}: {err[-3000:]}"
    assert proc.returncode != 0, out[-2000:]
    assert f"Job {cancelled} " in err and "has not produced any output (state: CANCELLED)" in err, err[-3000:]
    _wait_queue_empty(slurm, str(tmp_path), DRAIN_S)
    _no_partial_files(tmp_path)
    first = records(tmp_path)
    assert [(r["method"], r["status"]) for r in first] == [("sisa", "ok")]
    done = tmp_path / "runs" / first[0]["run_id"] / "result.json"
    stamp, content = done.stat().st_mtime_ns, done.read_bytes()

    hold.unlink()
    again = cli(
        "benchmarks.run",
        *sweep,
        results=tmp_path,
        timeout=SWEEP_S,
        env={**slurm, "PYTHONPATH": plugins, "RECUNLEARN_HOLD": str(hold)},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    _no_partial_files(tmp_path)
    recs = records(tmp_path)
    assert sorted((r["method"], r["status"]) for r in recs) == [("held_sisa", "ok"), ("sisa", "ok")]
    assert done.stat().st_mtime_ns == stamp and done.read_bytes() == content
    assert f"run {first[0]['run_id']} already has a result; skipping" in _job_logs(tmp_path)


def _job_logs(results: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in results.glob("logs/**/.submitit/*/*_log.out"))


@pytest.mark.timeout(START_S + SWEEP_S + 120)
@pytest.mark.slow
@pytest.mark.slurm
def test_two_sweeps_at_once_share_one_results_dir_and_one_oracle(slurm, tmp_path):
    """Two sweeps submitted together (the slurm_cpu preset) into one results directory: every
    record whole, each run run once, and their common retrain oracle trained once: one cache
    entry, `retrain_cached` false in exactly one record."""
    common = [
        *FAST,
        "submodel.epochs=3",
        "seed=0",
        "hydra/launcher=slurm_cpu",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"results_dir={tmp_path}",
    ]
    sweeps = [["method=retrain,sisa", "partitioner.n_shards=3"], ["method=sisa", "partitioner.n_shards=2,4"]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **slurm}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "-m", *s, *common],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sweeps
    ]
    try:
        outs = [p.communicate(timeout=SWEEP_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    _no_partial_files(tmp_path)
    recs = records(tmp_path)
    assert sorted((r["method"], r["n_shards"]) for r in recs) == [("retrain", 1), ("sisa", 2), ("sisa", 3), ("sisa", 4)]
    assert all(r["status"] == "ok" for r in recs)
    logs = _job_logs(tmp_path)
    for r in recs:
        assert logs.count(f"run {r['run_id']}: dataset=") == 1, r["run_id"]
    # two oracles in the cache, each trained once: the retrain oracle (seed 0) and the seed-floor
    # twin that differs only in its seed (completeness.seed_floor), one .pt and one .json each
    oracles = sorted(p.name for p in (tmp_path / "cache" / "oracle").iterdir() if not p.name.endswith(".lock"))
    assert len(oracles) == 4 and sorted(Path(n).suffix for n in oracles) == [".json", ".json", ".pt", ".pt"], oracles
    # the retrain job's own unlearning fit is the oracle (speedup.basis self, cached when it comes
    # first); a SISA job trains it only when it comes first
    assert next(r for r in recs if r["method"] == "retrain")["speedup.basis"] == "self"
    assert sum(not r["retrain_cached"] for r in recs if r["method"] != "retrain") <= 1


# -- a job's GPU (no GPU or cluster needed) --------------------------------------------------------


@pytest.mark.parametrize(
    "env, job, count, expected",
    [
        ({}, 5, 4, 1),  # local sweep: modulo
        ({"SLURM_JOB_ID": "7", "SUBMITIT_EXECUTOR": "slurm", "CUDA_VISIBLE_DEVICES": "3"}, 5, 1, 0),
        ({"SLURM_JOB_ID": "7", "SUBMITIT_EXECUTOR": "slurm", "CUDA_VISIBLE_DEVICES": "2,3"}, 5, 2, 0),
        ({"SLURM_JOB_ID": "7", "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_GPUS": "2"}, 1, 4, 2),  # all visible
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "3,1", "SLURM_JOB_GPUS": "1,3"}, 0, 4, 3),
        ({"SLURM_JOB_ID": "7"}, 3, 4, 0),  # no allocation known
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "4,5"}, 3, 2, 1),  # joblib in an allocation
        ({"SUBMITIT_EXECUTOR": "local", "CUDA_VISIBLE_DEVICES": "0,1"}, 3, 2, 1),  # submitit_local
    ],
)
def test_a_job_picks_a_gpu_it_was_given(env, job, count, expected):
    assert pick_gpu(job, count, env) == expected


def test_an_explicit_gpu_index_wins_and_must_be_visible():
    assert pick_gpu(3, 4, {"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "2"}, requested=1) == 1
    with pytest.raises(ConfigError, match="not among the 1 CUDA device"):
        pick_gpu(0, 1, {"CUDA_VISIBLE_DEVICES": "0"}, requested=2)
    with pytest.raises(ConfigError, match="GPU index 3"):
        pick_gpu(0, 2, {"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "3"})


def test_runtime_under_slurm_uses_the_allocated_gpu(monkeypatch):
    """Runtime.from_config, with CUDA faked: under SLURM with every GPU visible the job takes the
    one SLURM_JOB_GPUS names, not job number modulo the GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "GPU_DEVICE_ORDINAL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_GPUS", "2")
    runtime = Runtime.from_config({"device": "cuda", "deterministic": False}, job_index=1)
    assert runtime.device == torch.device("cuda", 2)
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.delenv("SUBMITIT_EXECUTOR")
    assert Runtime.from_config({"device": "cuda", "deterministic": False}, job_index=5).device == torch.device(
        "cuda", 1
    )
