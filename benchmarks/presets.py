"""`presets=tuned`: each run's sub-model takes the tuned preset of its dataset.

`experiment=tune_<submodel>` writes conf/submodel/tuned/<dataset>_<submodel>.yaml (benchmarks/tune.py).
A sweep over several methods cannot name one sub-model file for all of them (Unlearn-ALS trains ALS,
the others BPR), so `presets=tuned` picks, per run, the tuned file of (dataset, sub-model class):
the sub-model a method chose by its plain class name (`submodel=bpr`, or a method's default) is
replaced by the tuned one (`<dataset>_<submodel>_<method>.yaml` where that method's shards were
tuned on its own validation score, else `<dataset>_<submodel>.yaml`, tuned for retrain), and
`submodel.<key>=` settings given on the command line still win. A
named preset (`submodel=bpr_receraser`, `submodel=tuned/...`) is kept as chosen. A missing tuned
file is a clear error naming the command that writes it. The record's `presets` names the option
the sub-model's settings came from (`tuned/ml100k_bpr`, `bpr_receraser`, `bpr`).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from unlearn.errors import ConfigError

CONF = Path(__file__).resolve().parent / "conf"  # the Hydra configs (pkg://benchmarks.conf; conf/ in a checkout)
MODES = ("default", "tuned")


def preset_name(cfg: dict, method: bool = True) -> str:
    """<dataset>_<submodel>, tuned for retrain; <dataset>_<submodel>_<method> for a preset tuned on
    another method's own validation score (`experiment=tune_bpr method=sisa`); `method=False`:
    always the retrain one."""
    name = f"{cfg['dataset']['name']}_{cfg['submodel']['name']}"
    m = (cfg.get("method") or {}).get("name")
    return f"{name}_{m}" if method and m and m != "retrain" else name


def apply(cfg: dict, overrides: list[str], choice: str | None, conf: Path = CONF) -> dict:
    """`cfg` with the tuned sub-model where `presets=tuned` asks for it. `overrides`: the run's
    command-line overrides; `choice`: the submodel option Hydra composed (None: unknown)."""
    mode = cfg.get("presets", "default")
    if mode not in MODES:
        raise ConfigError(f"Unknown presets '{mode}'. Valid: {', '.join(MODES)}.")
    sub = cfg["submodel"]
    if mode == "default" or (choice is not None and choice != sub.get("name")):
        return {**cfg, "presets": choice or sub.get("name")}
    # a preset tuned for this method's own shards wins over the one tuned for retrain
    folder = conf / "submodel" / "tuned"
    name = preset_name(cfg)
    if not (folder / f"{name}.yaml").exists():
        name = preset_name(cfg, method=False)
    path = folder / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"presets=tuned: there is no tuned preset for dataset={cfg['dataset']['name']} "
                          f"submodel={sub['name']} ({path}). Write it with `make tune SUBMODEL={sub['name']} "
                          f"DATASET={cfg['dataset']['name']}`, or run with presets=default.")
    tuned = yaml.safe_load(path.read_text())
    explicit = {o.split("=", 1)[0].lstrip("+~").split(".", 1)[1] for o in overrides
                if o.lstrip("+~").startswith("submodel.") and "=" in o}
    return {**cfg, "submodel": {**tuned, **{k: v for k, v in sub.items() if k in explicit}},
            "presets": f"tuned/{name}"}
