"""Config composition in-process (as lightning-hydra-template does, Hydra initialised once for the
module): every option of every group composes and builds its component, every job of every
experiment composes and builds its method, and unknown names list the valid ones."""

from functools import lru_cache

import pytest
import yaml
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import unlearn
from benchmarks.records import run_id
from unlearn.errors import ConfigError
from unlearn.registry import AGGREGATORS, DATASETS, METHODS, PARTITIONERS, SPLITS, SUBMODELS

from .helpers import CONF, compose_cfg, sweep_jobs

pytestmark = pytest.mark.usefixtures("hydra_conf")

GROUPS = {"method": METHODS, "submodel": SUBMODELS, "partitioner": PARTITIONERS, "aggregator": AGGREGATORS}
AXES = ["method", "submodel", "partitioner", "aggregator", "seed"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@lru_cache(maxsize=None)
def _composed(overrides: tuple, return_hydra: bool):
    return compose_cfg(list(overrides), return_hydra_config=return_hydra)


def composed(*overrides, return_hydra=False):
    """Cached per module (the hydra_conf fixture is module-scoped); callers must not mutate."""
    return _composed(tuple(overrides), return_hydra)


@pytest.fixture(scope="module", autouse=True)
def _fresh_cache():
    _composed.cache_clear()
    yield
    _composed.cache_clear()


def option_name(group, option) -> str:
    """The component name an option file gives (read from the file, without composing)."""
    return yaml.safe_load((CONF / group / f"{option}.yaml").read_text())["name"]


def method_spec(cfg) -> dict:
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, AXES), resolve=True)


def build(group, cfg):
    """The component an option file describes, built from the composed config."""
    node = OmegaConf.to_container(cfg[group], resolve=True)
    cls = GROUPS[group].get(node["name"])
    if group == "method":
        return cls(method_spec(cfg))
    if group == "submodel":
        return cls(50, 40, node)
    if group == "aggregator":
        return cls(node, 50, 40)
    return cls(node)


def test_default_config():
    cfg = composed()
    assert cfg.method.name == "retrain" and cfg.partitioner.name == "none" and cfg.dataset.name == "ml100k"
    assert list(cfg.eval.ks) == [10, 20, 50] and cfg.seed == 0 and cfg.force is False


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_option_composes_and_builds_its_component(group):
    """Each conf/<group>/<option>.yaml names a registered component, composes, and the component
    accepts the settings the file gives it (a bad value in a yaml raises here)."""
    for option in options(group):
        cfg = composed(f"{group}={option}")
        name = cfg[group].name
        assert name in GROUPS[group], f"conf/{group}/{option}.yaml names unknown '{name}'"
        build(group, cfg)  # constructors validate their settings (ConfigError on a bad value)


@pytest.mark.parametrize(
    "registry", [METHODS, SUBMODELS, PARTITIONERS, AGGREGATORS, DATASETS, SPLITS], ids=lambda r: r.kind
)
def test_unknown_name_lists_every_valid_name(registry):
    with pytest.raises(ConfigError) as err:
        registry.get("no_such_component")
    msg = str(err.value)
    assert f"Unknown {registry.kind} 'no_such_component'" in msg
    listed = msg.split(f"Valid {registry.kind}s: ", 1)[1].rstrip(".").split(", ")
    assert listed == registry.names() and len(listed) >= 2


@pytest.mark.parametrize("option", options("dataset"))
def test_every_dataset_composes(option):
    cfg = composed(f"dataset={option}").dataset
    assert cfg.loader in unlearn.DATASETS and cfg.name
    split = cfg.get("split")
    assert split is None or split.name in SPLITS, f"conf/dataset/{option}.yaml: unknown split '{split.name}'"


def preset_axes(method):
    """{group: option} a method preset's defaults list overrides, through the presets it extends
    (`- eemu_cpu` in an ablation's defaults list)."""
    out = {}
    for entry in yaml.safe_load((CONF / "method" / f"{method}.yaml").read_text()).get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            out.update(preset_axes(entry))
        elif isinstance(entry, dict):
            ((key, option),) = entry.items()
            out[key.split()[-1].lstrip("/").split("@")[0]] = option
    return out


@pytest.mark.parametrize("method", options("method"))
def test_method_presets_choose_axes_and_command_line_wins(method):
    cfg = composed(f"method={method}")
    axes = preset_axes(method)
    assert axes, f"conf/method/{method}.yaml chooses no axis"
    allowed = METHODS.get(cfg.method.name).allowed
    for group, option in axes.items():
        assert cfg[group] == composed(f"{group}={option}")[group], f"method={method} does not select {group}={option}"
        names = {o: option_name(group, o) for o in options(group)}
        others = [
            o
            for o, name in names.items()
            if name != cfg[group].name and (group not in allowed or name in allowed[group])
        ]
        if others:  # a command-line choice the method allows wins over the preset's
            chosen = composed(f"method={method}", f"{group}={others[0]}")
            assert chosen[group] == composed(f"{group}={others[0]}")[group]
    if method == "sisa":
        assert cfg.partitioner.name == "random" and cfg.aggregator.name == "mean"
        assert composed("method=sisa", "aggregator=own").aggregator.name == "own"


# the tuning experiments sweep with Optuna's search space, not a grid: tests/test_tuning.py composes them
@pytest.mark.parametrize("experiment", [e for e in options("experiment") if not e.startswith("tune_")])
def test_every_experiment_composes_every_job(experiment):
    """Expand the sweep like the basic sweeper; every job composes, resolves and builds its method
    (which refuses incompatible axes), and no two jobs share a run id (the second would be
    skipped). Jobs differing only in plain values (seed, partitioner.n_shards, ...) share one
    composition of their config-group choices, and the plain overrides are applied to it the way
    Hydra applies them after composing."""
    params = composed(f"experiment={experiment}", return_hydra=True).hydra.sweeper.params or {}
    jobs = sweep_jobs(params)
    assert jobs and len(jobs) == len({tuple(j) for j in jobs})
    parser = OverridesParser.create()
    ids = {}
    for job in jobs:
        groups = tuple(o for o in job if (CONF / o.split("=", 1)[0]).is_dir())
        values = [o for o in job if o not in groups]
        cfg = OmegaConf.create(OmegaConf.to_container(composed(f"experiment={experiment}", *groups)))
        OmegaConf.set_struct(cfg, True)
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(values), cfg)
        for o in groups:  # the job's option is the one in effect
            group, option = o.split("=", 1)
            want = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
            set_later = {v.split("=", 1)[0].split(".", 1)[-1] for v in values if v.startswith(f"{group}.")}
            keys = [k for k in want if k not in ("defaults", *set_later)]  # deletion options have no name
            assert {k: cfg[group][k] for k in keys} == {k: want[k] for k in keys}, (job, o)
        for o in parser.parse_overrides(values):
            assert OmegaConf.select(cfg, o.key_or_group) == o.value(), (job, o.key_or_group)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        METHODS.get(resolved["method"]["name"])(method_spec(cfg))
        rid = run_id(resolved)
        assert rid not in ids, f"jobs {ids.get(rid)} and {job} of experiment={experiment} are one run"
        ids[rid] = job


@lru_cache(maxsize=None)
def _default_dataset():
    from unlearn.data import load_dataset

    return load_dataset(OmegaConf.to_container(composed().dataset))


@pytest.mark.parametrize("option", options("deletion"))
def test_every_deletion_preset_draws_a_forget_set(option):
    """On the default dataset (ML-100K: `deletion=sensitive` reads its genres)."""
    from unlearn.data.request_kinds import prepare_request

    cfg = OmegaConf.to_container(composed(f"deletion={option}").deletion)
    data, req = prepare_request(_default_dataset(), cfg, 0)
    assert req.n_forget > 0 and req.unit == cfg["unit"] and req.selection == cfg["selection"]
    assert req.rows.max() < len(data.train)
