"""The README's extension path: a method from the researcher's own module, same commands. The
one subprocess test of a single run (`python -m benchmarks.run`) and of `benchmarks.report`: the
plugin's folder reaches the run through PYTHONPATH, as the README tells researchers."""

import pytest

from .helpers import CLI_TIMEOUT, FAST, MARGIN, ROOT, cli, records


@pytest.mark.timeout(2 * CLI_TIMEOUT + MARGIN)
def test_own_method_runs_and_reports(tmp_path):
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'plugins'}"}
    proc = cli(
        "benchmarks.run", *FAST, "method.name=popularity", "plugins=[popularity_method]", results=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rec,) = records(tmp_path)
    assert rec["method"] == "popularity" and rec["status"] == "ok"
    assert 0 < rec["after.recall@20"] < 1 and "mia_auc.after" in rec and "retrain.ndcg@20" in rec
    rep = cli("benchmarks.report", f"results_dir={tmp_path}")
    assert rep.returncode == 0, rep.stderr
    assert "popularity" in (tmp_path / "tables" / "utility.md").read_text()
