"""The README's extension path: a method from the researcher's own module, same commands."""
from .helpers import FAST, ROOT, cli, records


def test_own_method_runs_and_reports(tmp_path):
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'plugins'}"}
    proc = cli("benchmarks.run", *FAST, "method.name=popularity", "plugins=[popularity_method]",
               results=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rec,) = records(tmp_path)
    assert rec["method"] == "popularity" and rec["status"] == "ok"
    assert 0 < rec["after.recall@20"] < 1 and "mia_auc.after" in rec and "retrain.ndcg@20" in rec
    rep = cli("benchmarks.report", f"results_dir={tmp_path}")
    assert rep.returncode == 0, rep.stderr
    assert "popularity" in (tmp_path / "tables" / "utility.md").read_text()


def test_unknown_plugin_module_is_a_clear_error(tmp_path):
    proc = cli("benchmarks.run", *FAST, "plugins=[no_such_module_xyz]", results=tmp_path)
    assert proc.returncode != 0 and "Cannot import plugin module 'no_such_module_xyz'" in proc.stderr
