"""The GPU path, where a CUDA device exists (skipped on CPU-only machines): the same run on
runtime=gpu is exact (exact_gap 0) and agrees with the CPU run up to float rounding. Both runs
are composed like the CLI's and executed in-process."""

import pytest
import torch

from .helpers import FAST, compose_run, records

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.usefixtures("hydra_conf"),
]


@pytest.mark.parametrize("method", ["sisa", "ultrare", "unlearn_als"])
def test_gpu_run_matches_cpu(tmp_path, method):
    args = ["method=" + method, "partitioner.n_shards=3", "deletion.ratio=null", "deletion.count=1", *FAST]
    cpu = compose_run(args, tmp_path / "cpu")
    gpu = compose_run([*args, "runtime=gpu", "runtime.progress=false"], tmp_path / "gpu")
    assert cpu["status"] == "ok" and gpu["status"] == "ok", gpu.get("error")
    (c,), (g,) = records(tmp_path / "cpu"), records(tmp_path / "gpu")
    assert g["device"].startswith("cuda") and g["run_id"] == c["run_id"]
    if method != "unlearn_als":  # the exact methods build the replica
        assert g["exact_gap"] == 0.0
    assert abs(g["after.ndcg@20"] - c["after.ndcg@20"]) < 0.05
