"""Committed reference records: a table's runs as JSON lines (docs/results/<table>.jsonl) that seed
a results directory, take back what a machine added and alone render the table."""

import json
import logging

import pytest

from benchmarks import paper_tables, reference
from benchmarks.report import load_spec, narrowing, report

from .helpers import CLI_TIMEOUT, FAST, MARGIN, cli, compose_run

TABLE = "ultrare_main"
PLAN = ["dataset=ml100k_cure4rec", "seed=0,1"]


def fake(i, method, seed, ndcg, started="2026-01-01T00:00:00+00:00", **extra):
    """A successful record that table `ultrare_main` narrowed to ml100k_cure4rec shows."""
    return {
        "run_id": f"r{i:02d}",
        "status": "ok",
        "dataset": "ml100k_cure4rec",
        "method": method,
        "submodel": "bpr",
        "partitioner": "none" if method == "retrain" else "random",
        "aggregator": "none",
        "n_shards": 1 if method == "retrain" else 10,
        "deletion.unit": "user",
        "deletion.selection": "random",
        "deletion.ratio": 0.05,
        "deletion.count": None,
        "seed": seed,
        "after.ndcg@20": ndcg,
        "after.recall@20": ndcg * 1.5,
        "unlearn_s": 1.0 + i,
        "speedup": 2.0 / (1.0 + i),
        "mia_auc.after": float("nan"),
        "mia_auc.after.ci95": [0.4, 0.6],
        "shards_retrained": [0, 3],
        "unlearn_s.per_request": [0.5, 0.5],
        "git_commit": "abcdef1234567890",
        "git_dirty": False,
        "versions": {"torch": "2"},
        "cpu": "Some CPU x2",
        "gpu": "",
        "started_at": started,
        "wall_s": 10.0 * (i + 1),
        **extra,
    }


def put(results, rec):
    run = results / "runs" / rec["run_id"]
    run.mkdir(parents=True, exist_ok=True)
    (run / "result.json").write_text(json.dumps(rec))
    return run / "result.json"


@pytest.fixture
def plan(monkeypatch):
    """A one-table plan, so that `paper_tables.main` works on fake records."""
    monkeypatch.setitem(paper_tables.PLANS, "cpu", [(TABLE, PLAN, "fake records")])
    monkeypatch.setitem(paper_tables.PLANS, "gpu", [])
    monkeypatch.setattr(paper_tables, "CPU_PLAN", paper_tables.PLANS["cpu"])
    monkeypatch.setattr(paper_tables, "GPU_PLAN", [])


def where():
    return narrowing(load_spec(TABLE), PLAN)


def test_export_then_read_keeps_the_tables_records(tmp_path):
    results, jsonl = tmp_path / "results", tmp_path / "docs" / f"{TABLE}.jsonl"
    shown = [
        fake(0, "retrain", 0, 0.30),
        fake(
            1,
            "sisa",
            0,
            0.20,
            **{
                "unlearn.objective_trace": [1.0] * 200,
                "fit.valid_curve": [[1, 0.1]] * 100,
                "unlearn_s.per_request": [0.5] * 100,
            },
        ),
    ]
    for rec in shown:
        put(results, rec)
    put(results, {**fake(2, "sisa", 1, 0.2), "dataset": "elsewhere"})  # outside the table
    put(results, {**fake(3, "sisa", 1, 0.2), "status": "failed", "traceback": "Traceback ..."})
    summary = reference.export(results, jsonl, TABLE, where())
    assert "2 new, 0 replaced, 2 record(s) in all" in summary
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 2 and all(
        line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")) for line in lines
    )  # one compact record a line, keys sorted
    back = reference.read(jsonl)
    assert back.bad == [] and sorted(back.by_id) == ["r00", "r01"]
    assert back.by_id["r00"].keys() == shown[0].keys()
    assert all(back.by_id["r00"][k] == v for k, v in shown[0].items() if k != "mia_auc.after")
    sisa = back.by_id["r01"]
    assert "unlearn.objective_trace" not in sisa and "fit.valid_curve" not in sisa  # traces no table reads
    assert sisa["unlearn_s.per_request"] == [0.5] * 100 and sisa["mia_auc.after.ci95"] == [0.4, 0.6]
    assert "traceback" not in reference.compact({**shown[0], "traceback": "Traceback ..."})
    for key in ("git_commit", "versions", "cpu", "gpu", "started_at", "wall_s"):
        assert key in sisa
    assert reference.export(results, jsonl, TABLE, where()).endswith("(unchanged)")


def test_merge_replaces_a_newer_record_of_the_same_run_and_keeps_the_others(tmp_path):
    jsonl = tmp_path / f"{TABLE}.jsonl"
    old = reference.Records()
    old.merge([fake(0, "retrain", 0, 0.30), fake(1, "sisa", 0, 0.20), {**fake(5, "sisa", 0, 0.2), "dataset": "other"}])
    reference.write(jsonl, old)
    results = tmp_path / "results"
    put(results, fake(0, "retrain", 0, 0.31, started="2026-02-01T00:00:00+00:00"))  # rerun later: replaces
    put(results, fake(1, "sisa", 0, 0.99, started="2025-12-01T00:00:00+00:00"))  # an older copy: ignored
    put(results, fake(2, "sisa", 1, 0.25))  # new
    assert "1 new, 1 replaced, 4 record(s) in all" in reference.export(results, jsonl, TABLE, where())
    merged = reference.read(jsonl).by_id
    assert sorted(merged) == ["r00", "r01", "r02", "r05"]  # r05 (another table's filter) is never dropped
    assert merged["r00"]["after.ndcg@20"] == 0.31 and merged["r01"]["after.ndcg@20"] == 0.20


def test_seeding_writes_what_the_results_directory_lacks(tmp_path):
    records = reference.Records()
    records.merge([fake(0, "retrain", 0, 0.30), fake(1, "sisa", 0, 0.20), fake(2, "sisa", 1, 0.25)])
    results = tmp_path / "results"
    newer = put(results, fake(0, "retrain", 0, 0.5, started="2027-01-01T00:00:00+00:00"))  # this machine's rerun
    put(results, {**fake(1, "sisa", 0, 0.2), "status": "failed"})
    assert reference.seed(results, records) == 2
    assert json.loads(newer.read_text())["after.ndcg@20"] == 0.5
    assert json.loads((results / "runs" / "r01" / "result.json").read_text())["status"] == "ok"
    assert reference.seed(results, records) == 0


def test_a_seeded_run_is_skipped_by_the_runner(tmp_path, hydra_conf, caplog):
    """A run recorded on another machine (another results directory) is not trained again: its run
    id is the same and the seeded result says ok."""
    overrides = [
        *FAST,
        "method=retrain",
        "submodel.epochs=2",
        "eval.probes=[]",
        "completeness.exact_replica=false",
        "completeness.seed_floor=false",
    ]
    record = compose_run(overrides, tmp_path / "elsewhere")
    assert record["status"] == "ok"
    jsonl = tmp_path / "table.jsonl"
    committed = reference.Records()
    committed.merge([record])
    reference.write(jsonl, committed)
    here = tmp_path / "here"
    assert reference.seed(here, reference.read(jsonl)) == 1
    result = here / "runs" / record["run_id"] / "result.json"
    before = (result.read_bytes(), result.stat().st_mtime_ns)
    with caplog.at_level(logging.INFO, logger="benchmarks.run"):
        assert compose_run(overrides, here) is None
    assert f"run {record['run_id']} already has a result; skipping" in caplog.text
    assert (result.read_bytes(), result.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (here / "runs").iterdir()) == [record["run_id"]]


def test_rendering_from_the_records_alone_gives_the_results_directorys_table(tmp_path, plan):
    results, out = tmp_path / "results", tmp_path / "docs"
    for i, (method, seed, ndcg) in enumerate(
        [("retrain", 0, 0.30), ("retrain", 1, 0.32), ("sisa", 0, 0.20), ("sisa", 1, 0.22)]
    ):
        put(
            results,
            fake(
                i,
                method,
                seed,
                ndcg,
                started=f"2026-01-0{i + 1}T00:00:00+00:00",
                git_commit="1111111111112222" if i < 2 else "3333333333334444",
            ),
        )
    put(results, {**fake(9, "sisa", 0, 0.9), "dataset": "elsewhere"})
    report(str(results), table=TABLE, where=where())
    reference.export(results, out / f"{TABLE}.jsonl", TABLE, where())
    assert paper_tables.main(["--render-only", "--out", str(out), "--results", str(tmp_path / "unused")]) == 0
    assert not (tmp_path / "unused").exists()  # nothing ran
    md = (out / f"{TABLE}.md").read_text()
    head, body = md[: md.index("\n## ")], md[md.index("\n## ") + 1 :]
    assert body == (results / "tables" / f"{TABLE}.md").read_text()
    for ext in ("csv", "tex"):
        meta, *rest = (out / f"{TABLE}.{ext}").read_text().splitlines(keepends=True)
        assert meta.startswith(("# ", "% ")) and "4 records" in meta
        assert "".join(rest) == (results / "tables" / f"{TABLE}.{ext}").read_text()
    assert "rests on 4 run records" in head and f"({TABLE}.jsonl)" in head and "100 s of their own wall time" in head
    assert "111111111111 (2), 333333333333 (2)" in head and "Some CPU x2 (4)" in head and "seeds: 0,1" in head
    assert "written: " in head and "command: `python -m benchmarks.table ultrare_main dataset=ml100k_cure4rec" in head
    index = (out / "README.md").read_text()
    assert f"[{TABLE}]({TABLE}.md)" in index and f"4 run records in [{TABLE}.jsonl]({TABLE}.jsonl)" in index


def test_a_malformed_line_is_counted_and_reported_not_fatal(tmp_path, plan, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    good = [fake(0, "retrain", 0, 0.30), fake(1, "sisa", 0, 0.20)]
    lines = [
        reference.line(good[0]),
        "<<<<<<< HEAD",
        '{"run_id": "r07", "status": "ok", "dataset"',
        "",
        json.dumps({**fake(2, "sisa", 1, 0.2), "status": "failed"}),
        "=======",
        reference.line(good[1]),
        ">>>>>>> other",
    ]
    jsonl = out / f"{TABLE}.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    back = reference.read(jsonl)
    assert sorted(back.by_id) == ["r00", "r01"] and len(back.bad) == 5
    assert paper_tables.main(["--render-only", "--only", TABLE, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{jsonl}: 5 line(s) are not successful run records" in err and "line 2: not JSON" in err
    assert "rests on 2 run records" in (out / f"{TABLE}.md").read_text()
    # the next export writes the file back without them (a merge's conflict resolved)
    reference.export(tmp_path / "empty", jsonl, TABLE, where())
    assert [json.loads(x)["run_id"] for x in jsonl.read_text().splitlines()] == ["r00", "r01"]


def test_render_only_without_records_is_one_clear_error(tmp_path, plan, capsys):
    assert paper_tables.main(["--render-only", "--only", TABLE, "--out", str(tmp_path)]) == 1
    assert paper_tables.main(["--only", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: {TABLE}: no records")
    assert err[-1].startswith("error: --only nope: not in the cpu plan")
    assert not (tmp_path / f"{TABLE}.md").exists()


TINY = [
    "dataset=synthetic",
    "submodel.dim=8",
    "submodel.iterations=10",
    "method.max_sweeps=10",
    "runtime.progress=false",
    "runtime.threads=1",
]


@pytest.mark.slow
@pytest.mark.timeout(5 * CLI_TIMEOUT + MARGIN)
def test_paper_tables_extends_a_table_from_another_machine(tmp_path, monkeypatch, capfd):
    """Two sittings on two machines (two results directories) extend one table: the second trains
    only the seed the records lack; `benchmarks.table` renders the same table from its results
    directory and from the records file."""
    name, out = "unlearn_als_paper", tmp_path / "docs"
    monkeypatch.setitem(paper_tables.PLANS, "gpu", [])
    monkeypatch.setitem(paper_tables.PLANS, "cpu", [(name, [*TINY, "seed=0"], "tiny")])
    assert paper_tables.main(["--out", str(out), "--results", str(tmp_path / "a")]) == 0
    first = reference.read(out / f"{name}.jsonl").by_id
    assert len(first) == 1
    monkeypatch.setitem(paper_tables.PLANS, "cpu", [(name, [*TINY, "seed=0,1"], "tiny")])
    capfd.readouterr()
    assert paper_tables.main(["--out", str(out), "--results", str(tmp_path / "b")]) == 0
    log = "".join(capfd.readouterr())  # the runner logs to stdout, the commands to stderr
    assert f"run {next(iter(first))} already has a result; skipping" in log and log.count("skipping") == 1
    both = reference.read(out / f"{name}.jsonl").by_id
    assert len(both) == 2 and {r["seed"] for r in both.values()} == {0, 1}
    assert all(reference.line(both[rid]) == reference.line(rec) for rid, rec in first.items())  # kept as it was
    md = (out / f"{name}.md").read_text()
    assert "rests on 2 run records" in md and "seeds: 0,1" in md
    body = md[md.index("\n## ") + 1 :]
    proc = cli("benchmarks.table", name, f"results_dir={tmp_path / 'b'}", *TINY, "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "b" / "tables" / f"{name}.md").read_text() == body
    proc = cli(
        "benchmarks.table",
        name,
        f"results_dir={tmp_path / 'c'}",
        f"records={out / (name + '.jsonl')}",
        *TINY,
        "seed=0,1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count("already has a result; skipping") == 2
    assert (tmp_path / "c" / "tables" / f"{name}.md").read_text() == body
