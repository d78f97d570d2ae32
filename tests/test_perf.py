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


def test_clustering_benchmark_times_the_clustering_alone(tmp_path):
    """Embeddings come from the cache, whose recorded training seconds must not be subtracted
    from the clustering time (that gave negative seconds)."""
    from benchmarks.perf.clustering import main

    df = main(["--dataset", "synthetic", "--ks", "2", "--repeats", "1", "--results-dir", str(tmp_path)])
    assert len(df) == 4 and (df["seconds"] > 0).all()
    emd = df[df["partitioner"] == "ot (emd)"].iloc[0]
    assert emd["largest"] - emd["smallest"] <= 1
