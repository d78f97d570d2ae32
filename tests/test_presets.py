"""presets=tuned: each run's sub-model takes its dataset's tuned preset by name."""
import pytest
import yaml

from benchmarks import presets
from unlearn.errors import ConfigError


@pytest.fixture
def conf(tmp_path):
    (tmp_path / "submodel" / "tuned").mkdir(parents=True)
    (tmp_path / "submodel" / "tuned" / "ml100k_bpr.yaml").write_text(
        yaml.safe_dump({"name": "bpr", "dim": 32, "lr": 0.002, "reg": 0.0, "epochs": 200}))
    return tmp_path


def cfg(sub, mode="tuned"):
    return {"dataset": {"name": "ml100k"}, "submodel": sub, "presets": mode}


def test_tuned_replaces_a_plain_class_choice_and_command_line_settings_win(conf):
    out = presets.apply(cfg({"name": "bpr", "dim": 64, "lr": 0.005, "epochs": 3}), ["method=sisa", "submodel.epochs=3"], "bpr", conf)
    assert out["submodel"] == {"name": "bpr", "dim": 32, "lr": 0.002, "reg": 0.0, "epochs": 3}
    assert out["presets"] == "tuned/ml100k_bpr"


def test_a_named_preset_is_kept_and_default_changes_nothing(conf):
    sub = {"name": "bpr", "lr": 0.05}
    assert presets.apply(cfg(sub), [], "bpr_receraser", conf)["submodel"] == sub
    assert presets.apply(cfg(sub), [], "bpr_receraser", conf)["presets"] == "bpr_receraser"
    assert presets.apply(cfg(sub, "default"), [], "bpr", conf)["submodel"] == sub


def test_a_missing_tuned_preset_names_the_command_that_writes_it(conf):
    with pytest.raises(ConfigError, match="make tune SUBMODEL=wmf DATASET=ml100k"):
        presets.apply(cfg({"name": "wmf"}), [], "wmf", conf)
    with pytest.raises(ConfigError, match="Unknown presets 'best'"):
        presets.apply(cfg({"name": "bpr"}, "best"), [], "bpr", conf)


def test_the_smoke_experiment_runs_every_method_on_its_tuned_preset(hydra_conf, tmp_path):
    """experiment=smoke sets presets: tuned (config.yaml's own keys come before the experiment)."""
    from .helpers import CONF, run_config

    for method, preset in (("sisa", "ml100k_bpr"), ("unlearn_als", "ml100k_als")):
        cfg = run_config(["experiment=smoke", f"method={method}"], tmp_path)
        tuned = yaml.safe_load((CONF / "submodel" / "tuned" / f"{preset}.yaml").read_text())
        assert cfg["presets"] == f"tuned/{preset}" and cfg["submodel"] == tuned
    assert run_config(["experiment=smoke", "method=eemu_smoke"], tmp_path)["presets"] == "twotower_small"
    assert run_config(["method=sisa"], tmp_path)["presets"] == "bpr"  # the default: as chosen


def test_the_latency_stream_reads_every_method_against_the_tuned_ml1m_presets(hydra_conf, tmp_path):
    from .helpers import run_config

    for method, preset in (("retrain", "ml1m_cure4rec_bpr"), ("receraser", "ml1m_cure4rec_bpr"),
                           ("unlearn_als", "ml1m_cure4rec_als")):
        assert run_config(["experiment=latency_stream", f"method={method}"], tmp_path)["presets"] == f"tuned/{preset}"


def test_a_preset_tuned_for_the_method_wins_over_the_retrain_one(conf):
    (conf / "submodel" / "tuned" / "ml100k_bpr_sisa.yaml").write_text(yaml.safe_dump({"name": "bpr", "dim": 16}))
    sisa = presets.apply({**cfg({"name": "bpr"}), "method": {"name": "sisa"}}, [], "bpr", conf)
    assert sisa["presets"] == "tuned/ml100k_bpr_sisa" and sisa["submodel"]["dim"] == 16
    ultrare = presets.apply({**cfg({"name": "bpr"}), "method": {"name": "ultrare"}}, [], "bpr", conf)
    assert ultrare["presets"] == "tuned/ml100k_bpr" and ultrare["submodel"]["dim"] == 32
