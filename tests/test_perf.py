"""The performance benchmarks run and check what they compare (no wall time is asserted)."""
import json


def test_partitioning_benchmark_agrees_with_the_released_walk(tmp_path):
    from benchmarks.perf.partitioning import main

    res = main(["--dataset", "synthetic", "--ks", "3", "7", "--repeats", "1", "--results-dir", str(tmp_path)])
    rows = res["rows"]
    assert [(r["partitioner"], r["K"]) for r in rows] == [(p, k) for p in ("ubp", "ibp", "inbp") for k in (3, 7)]
    assert all(r["agree"] and r["largest"] <= r["capacity"] for r in rows)
    assert json.loads((tmp_path / "perf" / "partitioning.json").read_text())["rows"] == json.loads(json.dumps(rows))
    assert "released walk" in (tmp_path / "perf" / "partitioning.md").read_text()
