"""Tuning as a sweep: experiment=tune_<submodel> runs Hydra's Optuna sweeper over
method=retrain's validation score and writes the best trial as a preset that loads by name."""

import json

import pytest
import yaml
from omegaconf import OmegaConf

import unlearn  # noqa: F401  (fills the registries)
from unlearn.errors import ConfigError
from unlearn.runtime import Runtime
from unlearn.tuning import validation_score

from .helpers import CONF, cli, compose_cfg
from .test_defaults import test_option_file_restates_defaults_or_declares_a_preset as check_preset

TRIAL = ["dataset=synthetic", "submodel.epochs=6", "submodel.patience=3", "submodel.min_epochs=0"]


@pytest.mark.timeout(420)
def test_a_three_trial_tuning_writes_a_preset_that_reproduces_its_score(tmp_path):
    out = cli(
        "benchmarks.run",
        "-m",
        "experiment=tune_bpr",
        *TRIAL,
        "hydra.sweeper.n_trials=3",
        f"tune.preset_root={tmp_path / 'conf'}",
        results=tmp_path / "results",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    preset = tmp_path / "conf" / "submodel" / "tuned" / "synthetic_bpr.yaml"
    assert preset.exists(), out.stderr[-3000:]
    best = OmegaConf.load(next((tmp_path / "results").glob("logs/multirun/*/*/optimization_results.yaml")))
    trials = list((tmp_path / "results").glob("logs/multirun/*/*/trials.jsonl"))
    assert len(trials) == 1 and len(trials[0].read_text().splitlines()) == 3
    text = preset.read_text()
    assert f"{best.best_value:.5f}" in text and "3 trials" in text and "Search space: submodel.lr" in text
    assert yaml.safe_load(text)["lr"] == best.best_params["submodel.lr"]
    check_preset("submodel", preset)  # its header lists every setting it changes
    assert f"`tuned/synthetic_bpr` | ndcg@20 = {best.best_value:.5f} | 3 |" in (preset.parent / "README.md").read_text()
    # the search starts from the preset it tunes: the third trial (the second batch's first) runs
    # the bpr class preset's own values, and the header gives its score
    base = yaml.safe_load((CONF / "submodel" / "bpr.yaml").read_text())
    lines = [json.loads(line) for line in trials[0].read_text().splitlines()]
    start = {f"submodel.{k}": base[k] for k in ("lr", "reg", "dim", "batch_size")}
    at_start = [t for t in lines if all(t["params"][k] == v for k, v in start.items())]
    assert len(at_start) == 1, lines
    assert "starting preset's own values" in text and f"{at_start[0]['ndcg@20']:.5f}" in text
    assert best.best_value >= at_start[0]["ndcg@20"]

    # loads by name from a config search path, and gives the same validation score
    cfg = compose_cfg(
        [
            "dataset=synthetic",
            "submodel=tuned/synthetic_bpr",
            "runtime.threads=1",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        ]
    )
    cfg = OmegaConf.to_container(cfg, resolve=True)
    assert cfg["submodel"]["name"] == "bpr" and cfg["submodel"]["lr"] == best.best_params["submodel.lr"]
    again = validation_score(cfg, Runtime.from_config(cfg["runtime"]), "ndcg@20")
    assert again["ndcg@20"] == pytest.approx(best.best_value, abs=1e-9)


def test_every_tuning_experiment_composes_with_its_search_space(hydra_conf):
    for sub in ("bpr", "bce", "mse", "wmf", "als", "lightgcn"):
        cfg = compose_cfg([f"experiment=tune_{sub}", "dataset=synthetic"], return_hydra_config=True)
        assert cfg.submodel.name == sub and cfg.method.name == "retrain" and cfg.tune.metric == "ndcg@20"
        params = cfg.hydra.sweeper.params
        assert params and all(k.startswith("submodel.") and k.split(".", 1)[1] in cfg.submodel for k in params)
        assert cfg.hydra.sweeper.sampler.seed == 0 and cfg.hydra.sweeper.direction == "maximize"


def test_the_objective_refuses_a_dataset_without_validation(hydra_conf):
    cfg = OmegaConf.to_container(
        compose_cfg(["dataset=synthetic", "dataset.split.ratios=[0.8,0.0,0.2]", "runtime.threads=1"]), resolve=True
    )
    with pytest.raises(ConfigError, match="no validation rows"):
        validation_score(cfg, Runtime.from_config(cfg["runtime"]), "ndcg@20")
    with pytest.raises(ConfigError, match="tune.metric"):
        validation_score(cfg, Runtime.from_config(cfg["runtime"]), "ndcg")


def test_a_method_other_than_retrain_gets_a_preset_of_its_own():
    from benchmarks.presets import preset_name

    base = {"dataset": {"name": "ml100k"}, "submodel": {"name": "bpr"}}
    assert preset_name({**base, "method": {"name": "retrain"}}) == "ml100k_bpr"
    assert preset_name({**base, "method": {"name": "sisa"}}) == "ml100k_bpr_sisa"


def test_a_search_over_method_keys_writes_a_method_preset_that_composes_to_the_best_trial(hydra_conf, tmp_path):
    """experiment=tune_eemu searches EEMU's own keys: the callback writes a method preset that
    extends the option it tuned and states only the best values, which composes by name."""
    from benchmarks.tune import WritePreset

    sweep = tmp_path / "sweep"
    cfg = compose_cfg(
        ["experiment=tune_eemu", "dataset=ml100k_loo", f"tune.preset_root={tmp_path / 'conf'}"],
        return_hydra_config=True,
    )
    OmegaConf.set_struct(cfg, False)
    cfg.hydra.sweep.dir = str(sweep)
    best = {"method.lr": 0.004, "method.inner_lr": 0.0005, "method.adapt_lr": 0.001, "method.meta_epochs": 6}
    sweep.mkdir()
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump({"best_params": best, "best_value": 0.0531}))
    (sweep / "trials.jsonl").write_text(json.dumps({"job": 0, "params": best, "ndcg@20": 0.0531}) + "\n")
    callback = WritePreset()
    callback.on_multirun_start(cfg)
    callback.on_multirun_end(cfg)

    preset = tmp_path / "conf" / "method" / "eemu_cpu_tuned.yaml"
    body = yaml.safe_load(preset.read_text())
    assert body == {"defaults": ["eemu_cpu", "_self_"], **{k.split(".", 1)[1]: v for k, v in best.items()}}
    text = preset.read_text()
    assert "0.05310" in text and "1 trials" in text and "Search space: method.lr" in text
    check_preset("method", preset)  # its header lists every setting it changes
    composed = compose_cfg(["method=eemu_cpu_tuned", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"])
    base = compose_cfg(["method=eemu_cpu"])
    assert composed.method.lr == 0.004 and composed.method.meta_epochs == 6
    assert composed.method.meta_batch == base.method.meta_batch and composed.partitioner == base.partitioner


def test_a_search_over_two_groups_is_refused_before_any_trial(hydra_conf, capsys):
    from benchmarks.tune import WritePreset

    cfg = compose_cfg(["experiment=tune_bpr", "dataset=synthetic"], return_hydra_config=True)
    OmegaConf.set_struct(cfg, False)
    cfg.hydra.sweeper.params["method.lr"] = "interval(1e-3, 1e-2)"
    with pytest.raises(SystemExit) as exc:
        WritePreset().on_multirun_start(cfg)
    assert exc.value.code == 2
    assert "not for both" in capsys.readouterr().err
