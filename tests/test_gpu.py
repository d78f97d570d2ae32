"""The GPU path, where a CUDA device exists (skipped on CPU-only machines): the same run on
runtime=gpu is exact (exact_gap 0) and agrees with the CPU run up to float rounding."""
import pytest
import torch

from .helpers import FAST, cli, records

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("method", ["sisa", "ultrare", "unlearn_als"])
def test_gpu_run_matches_cpu(tmp_path, method):
    args = ["method=" + method, "partitioner.n_shards=3", *FAST]
    cpu = cli("benchmarks.run", *args, results=tmp_path / "cpu")
    gpu = cli("benchmarks.run", *args, "runtime=gpu", "runtime.progress=false", results=tmp_path / "gpu")
    assert cpu.returncode == 0 and gpu.returncode == 0, gpu.stderr[-2000:]
    (c,), (g,) = records(tmp_path / "cpu"), records(tmp_path / "gpu")
    assert g["device"].startswith("cuda") and g["run_id"] == c["run_id"]
    if "exact_gap" in g:
        assert g["exact_gap"] == 0.0
    assert abs(g["after.ndcg@20"] - c["after.ndcg@20"]) < 0.05
