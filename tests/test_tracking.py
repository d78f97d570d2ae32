"""tracking=mlflow: a run's config, numbers and record, and a table's rendered files, logged to a
local MLflow store (a file store here); tracking=none logs nothing."""

import pytest

from .helpers import FAST, compose_run, run_config

mlflow = pytest.importorskip("mlflow", reason="the optional tracking extra is not installed")


def test_a_run_is_logged_to_a_file_store(hydra_conf, tmp_path):
    store = tmp_path / "mlruns"
    rec = compose_run(
        [*FAST, "tracking=mlflow", f"tracking.uri=file://{store}", "tracking.experiment=t"], tmp_path / "res"
    )
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file://{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.data.tags["run_id"] == rec["run_id"] and run.data.tags["status"] == "ok"
    assert run.data.params["method.name"] == "retrain" and run.data.params["dataset.name"] == "synthetic"
    assert run.data.metrics["after.ndcg_at_20"] == pytest.approx(rec["after.ndcg@20"])
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["result.json"]


def test_tracking_does_not_change_the_run_id(hydra_conf, tmp_path):
    from benchmarks.records import run_id

    plain = run_config(FAST, tmp_path)
    tracked = run_config([*FAST, "tracking=mlflow"], tmp_path)
    assert tracked["tracking"]["uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert run_id(plain) == run_id(tracked)


def test_the_table_command_logs_its_rendered_files(tmp_path):
    from benchmarks import tracking

    files = [tmp_path / "tables" / "t.md", tmp_path / "figures" / "t.png"]
    for f in files:
        f.parent.mkdir(parents=True)
        f.write_text("x")
    uri = f"file://{tmp_path / 'mlruns'}"
    run_id = tracking.log_tables({"name": "mlflow", "uri": uri, "experiment": "tables"}, "t", files)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["figures", "tables"]
