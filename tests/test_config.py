"""Config composition in-process (as lightning-hydra-template does): every option of every group
and every experiment composes, and names resolve in the registries."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import unlearn
from unlearn.registry import AGGREGATORS, METHODS, PARTITIONERS, SUBMODELS

from .helpers import ROOT

CONF = ROOT / "conf"
GROUPS = {"method": METHODS, "submodel": SUBMODELS, "partitioner": PARTITIONERS, "aggregator": AGGREGATORS}


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides, return_hydra=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra)


def test_default_config():
    cfg = composed()
    assert cfg.method.name == "retrain" and cfg.partitioner.name == "none" and cfg.dataset.name == "ml100k"
    assert list(cfg.eval.ks) == [10, 20, 50] and cfg.seed == 0 and cfg.force is False


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_option_names_a_registered_component(group):
    for option in options(group):
        cfg = composed(f"{group}={option}")
        assert cfg[group].name in GROUPS[group], f"conf/{group}/{option}.yaml names unknown '{cfg[group].name}'"


@pytest.mark.parametrize("option", options("dataset"))
def test_every_dataset_composes(option):
    cfg = composed(f"dataset={option}")
    assert cfg.dataset.loader in unlearn.DATASETS


@pytest.mark.parametrize("method", options("method"))
def test_method_presets_choose_axes_and_command_line_wins(method):
    cfg = composed(f"method={method}")
    m = METHODS.get(cfg.method.name)(OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, ["method", "submodel", "partitioner", "aggregator", "seed"]), resolve=True))
    assert m.registered_name == cfg.method.name
    if method == "sisa":
        assert cfg.partitioner.name == "random" and cfg.aggregator.name == "mean"
        assert composed("method=sisa", "aggregator=own").aggregator.name == "own"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_every_job(experiment):
    """Expand the sweep like the basic sweeper and build every job's method (checks axes)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = composed(f"experiment={experiment}", return_hydra=True)
    params = cfg.hydra.sweeper.params or {}
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    import itertools

    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
               else [f"{o.get_key_element()}={o.get_value_element_as_str()}"] for o in overrides]
    jobs = list(itertools.product(*choices))
    assert jobs
    for job in jobs[:200]:
        c = composed(f"experiment={experiment}", *job)
        spec = OmegaConf.to_container(OmegaConf.masked_copy(c, ["method", "submodel", "partitioner", "aggregator", "seed"]), resolve=True)
        METHODS.get(c.method.name)(spec)  # refuses incompatible axes


@pytest.mark.parametrize("option", options("deletion"))
def test_every_deletion_preset_draws_a_forget_set(option, synthetic):
    from unlearn.data.deletion import draw

    cfg = OmegaConf.to_container(composed(f"deletion={option}").deletion)
    req = draw(synthetic.train, synthetic.n_users, synthetic.n_items, cfg, 0)
    assert req.n_forget > 0 and req.unit == cfg["unit"] and req.selection == cfg["selection"]
