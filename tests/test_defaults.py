"""One source of defaults (the component classes): every option file under conf/ either restates
its class's defaults exactly, or is a named preset whose header lists every key it changes.
A cached method saves every shape it needs to be rebuilt."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import unlearn  # noqa: F401  (fills the registries)
from unlearn.data import TrainSet
from unlearn.registry import AGGREGATORS, METHODS, PARTITIONERS, SUBMODELS

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"submodel": SUBMODELS, "partitioner": PARTITIONERS, "aggregator": AGGREGATORS, "method": METHODS}
NOT_SETTINGS = {"name", "defaults"}  # the component's name and Hydra's defaults list


def option_files():
    # presets in subfolders too (conf/submodel/tuned/*.yaml, written by experiment=tune_<submodel>)
    return [(group, path) for group in GROUPS for path in sorted((ROOT / "conf" / group).rglob("*.yaml"))]


def header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("group,path", option_files(), ids=lambda x: getattr(x, "stem", x))
def test_option_file_restates_defaults_or_declares_a_preset(group, path):
    cfg = yaml.safe_load(path.read_text()) or {}
    parents = [e for e in cfg.get("defaults") or [] if isinstance(e, str) and e != "_self_"]
    if parents:  # a preset extending another of its group: it lists what it changes in its header
        own = {k: v for k, v in cfg.items() if k not in NOT_SETTINGS}
        text = header(path)
        assert re.search(rf"differs from {re.escape(parents[0])} in", text), f"{path.name} has no 'differs from' line"
        unlisted = [k for k in own if not re.search(rf"\b{re.escape(k)}\b", text)]
        assert not unlisted, f"preset {path.name} changes {unlisted} without listing them in its header"
        return
    cls = GROUPS[group].get(cfg["name"])
    defaults = getattr(cls, "defaults", {})
    settings = {k: v for k, v in cfg.items() if k not in NOT_SETTINGS}
    unknown = sorted(set(settings) - set(defaults))
    assert not unknown, f"{path.name} sets keys {unknown} that {cls.__name__}.defaults does not know"
    changed = sorted(k for k, v in settings.items() if v != defaults[k])
    if path.stem == cfg["name"]:  # the component's own file: the class defaults, restated exactly
        assert not changed, f"{path.name} differs from {cls.__name__}.defaults in {changed}"
        missing = sorted(set(defaults) - set(settings))
        assert not missing, f"{path.name} does not restate {missing} of {cls.__name__}.defaults"
    else:  # a named preset: every difference is deliberate and listed in its header
        text = header(path)
        assert re.search(r"differs from the class defaults in", text), f"{path.name} has no 'differs from' line"
        unlisted = [k for k in changed if not re.search(rf"\b{re.escape(k)}\b", text)]
        assert not unlisted, f"preset {path.name} changes {unlisted} without listing them in its header"


def test_a_preset_file_that_hides_a_difference_is_caught(tmp_path):
    """The check above can fail: a preset changing lr without saying so."""
    p = tmp_path / "bpr_quiet.yaml"
    p.write_text("# a preset\n# differs from the class defaults in: reg\nname: bpr\nreg: 0.5\nlr: 0.1\n")
    with pytest.raises(AssertionError, match="lr"):
        test_option_file_restates_defaults_or_declares_a_preset("submodel", p)


def test_cached_sharded_method_saves_its_shard_count_even_with_an_empty_last_shard(synthetic):
    """A partition whose last shard is empty (k-means allows it) must round-trip: the shard count
    comes from the saved state, not from the largest shard id."""
    d = synthetic
    spec = {
        "method": {"name": "sisa"},
        "submodel": {"name": "bpr", "dim": 4, "epochs": 1, "patience": 0},
        "partitioner": {"name": "random", "n_shards": 3, "unit": "user"},
        "aggregator": {"name": "mean"},
        "seed": 0,
    }
    m = METHODS.get("sisa")(spec)
    data = TrainSet(d.n_users, d.n_items, d.train, d.valid)
    m.fit(data)
    state = m.state_dict()
    state["row_shard"] = torch.where(state["row_shard"] == 2, torch.tensor(1), state["row_shard"])  # shard 2 empty
    loaded = METHODS.get("sisa")(spec)
    loaded.load_state_dict(state, data)
    assert loaded.partition.n_shards == 3 and len(loaded.shards) == 3
    with pytest.raises(ValueError, match="other training rows"):
        METHODS.get("sisa")(spec).load_state_dict(m.state_dict(), data.without(np.arange(5)))
