"""`presets=tuned`: each run's sub-model takes the tuned preset of its dataset.

`experiment=tune_<submodel>` writes conf/submodel/tuned/<dataset>_<submodel>.yaml (benchmarks/tune.py).
A sweep over several methods cannot name one sub-model file for all of them (Unlearn-ALS trains ALS,
the others BPR), so Hydra composes the tuned file of (dataset, sub-model option) over the option's
class defaults (conf/config.yaml: the `submodel_preset` entries), and a file tuned on the method's
own validation score (`<dataset>_<submodel>_<method>.yaml`) over that. So `--cfg job`, the run and
the record show the same settings; experiments, protocols and `submodel.<key>=` on the command line
still win. A named preset (`submodel=bpr_receraser`, `submodel=tuned/...`) names no such file and is
kept as chosen. This module names what was applied (the record's `presets`) and turns a missing
tuned file, which Hydra skips, into a clear error naming the command that writes it.
"""

from __future__ import annotations

from pathlib import Path

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


def applied(cfg: dict, choice: str | None, conf: Path = CONF) -> str:
    """Where the composed sub-model's settings came from: `tuned/<file>` for the tuned preset Hydra
    merged, else the sub-model option as chosen. `choice`: the submodel option (None: unknown).
    Raises ConfigError for `presets=tuned` on a class with no tuned file for the dataset."""
    mode = cfg.get("presets", "default")
    if mode not in MODES:  # pragma: no cover - Hydra refuses an unknown presets option first
        raise ConfigError(f"Unknown presets '{mode}'. Valid: {', '.join(MODES)}.")
    sub = cfg["submodel"].get("name")
    if mode == "default" or (choice is not None and choice != sub):
        return choice or sub
    folder = conf / "submodel" / "tuned"
    for name in (preset_name(cfg), preset_name(cfg, method=False)):
        if (folder / f"{name}.yaml").exists():
            return f"tuned/{name}"
    raise ConfigError(
        f"presets=tuned: there is no tuned preset for dataset={cfg['dataset']['name']} "
        f"submodel={sub} ({folder / (preset_name(cfg, method=False) + '.yaml')}). Write it with "
        f"`make tune SUBMODEL={sub} DATASET={cfg['dataset']['name']}`, or run with presets=default."
    )


def apply(cfg: dict, choice: str | None, conf: Path = CONF) -> dict:
    """`cfg` with its `presets` key naming what was applied (see `applied`)."""
    return {**cfg, "presets": applied(cfg, choice, conf)}
