"""presets=tuned: Hydra composes each run's tuned sub-model preset, so `--cfg job` shows what runs."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from benchmarks import presets
from unlearn.errors import ConfigError

from .helpers import CONF, ROOT, run_config


def tuned(name: str) -> dict:
    return yaml.safe_load((CONF / "submodel" / "tuned" / f"{name}.yaml").read_text())


def test_tuned_replaces_a_plain_class_choice_and_command_line_settings_win(hydra_conf, tmp_path):
    cfg = run_config(["presets=tuned", "method=sisa", "submodel.epochs=3"], tmp_path)
    assert cfg["submodel"] == {**tuned("ml100k_bpr"), "epochs": 3}
    assert cfg["presets"] == "tuned/ml100k_bpr"


def test_a_named_preset_is_kept_and_default_changes_nothing(hydra_conf, tmp_path):
    named = yaml.safe_load((CONF / "submodel" / "bpr_receraser.yaml").read_text())
    cfg = run_config(["presets=tuned", "submodel=bpr_receraser"], tmp_path)
    assert cfg["presets"] == "bpr_receraser" and cfg["submodel"]["lr"] == named["lr"]
    plain = run_config(["method=sisa"], tmp_path)
    assert plain["presets"] == "bpr" and plain["submodel"]["lr"] != tuned("ml100k_bpr")["lr"]


def test_a_missing_tuned_preset_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(ConfigError, match="make tune SUBMODEL=twotower DATASET=ml1m_cure4rec"):
        presets.applied(
            {"presets": "tuned", "dataset": {"name": "ml1m_cure4rec"}, "submodel": {"name": "twotower"}},
            "twotower",
            tmp_path,
        )


def test_cfg_job_shows_the_settings_the_run_records(tmp_path):
    """What a Hydra user inspects (`--cfg job`) is what the record keeps."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "presets=tuned", "method=sisa", "submodel.epochs=2", "--cfg", "job"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)["submodel"]
    assert shown == {**tuned("ml100k_bpr"), "epochs": 2}


def test_the_smoke_experiment_runs_every_method_on_its_tuned_preset(hydra_conf, tmp_path):
    """experiment=smoke picks presets=tuned through its defaults list."""
    for method, preset in (("sisa", "ml100k_bpr"), ("unlearn_als", "ml100k_als")):
        cfg = run_config(["experiment=smoke", f"method={method}"], tmp_path)
        assert cfg["presets"] == f"tuned/{preset}" and cfg["submodel"] == tuned(preset)
    assert run_config(["experiment=smoke", "method=eemu_smoke"], tmp_path)["presets"] == "twotower_small"
    assert run_config(["method=sisa"], tmp_path)["presets"] == "bpr"  # the default: as chosen


def test_the_latency_stream_reads_every_method_against_the_tuned_ml1m_presets(hydra_conf, tmp_path):
    for method, preset in (
        ("retrain", "ml1m_cure4rec_bpr"),
        ("receraser", "ml1m_cure4rec_bpr"),
        ("unlearn_als", "ml1m_cure4rec_als"),
    ):
        assert run_config(["experiment=latency_stream", f"method={method}"], tmp_path)["presets"] == f"tuned/{preset}"


def test_a_preset_tuned_for_the_method_wins_over_the_retrain_one(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf, symlinks=True)
    (conf / "submodel" / "tuned" / "ml100k_bpr_sisa.yaml").write_text(yaml.safe_dump({"name": "bpr", "dim": 16}))
    code = (
        "import sys, json; from hydra import compose, initialize_config_dir\n"
        "with initialize_config_dir(config_dir=sys.argv[1], version_base='1.3'):\n"
        "    print(json.dumps([dict(compose('config', overrides=['presets=tuned', f'method={m}']).submodel)"
        " for m in ('sisa', 'ultrare')]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(conf)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sisa, ultrare = json.loads(out.stdout)
    assert sisa["dim"] == 16 and sisa["lr"] == tuned("ml100k_bpr")["lr"]
    assert ultrare["dim"] == tuned("ml100k_bpr")["dim"]
    assert (
        presets.applied(
            {
                "presets": "tuned",
                "dataset": {"name": "ml100k"},
                "submodel": {"name": "bpr"},
                "method": {"name": "sisa"},
            },
            "bpr",
            conf,
        )
        == "tuned/ml100k_bpr_sisa"
    )
