"""Refuse a sweep's incompatible jobs before any job runs.

A sweep such as `-m method=sisa,unlearn_als submodel=bpr` holds a job no method accepts
(Unlearn-ALS trains ALS only). Each job's config is composed as the basic sweeper will compose it
and checked without loading data (`unlearn.lifecycle.check`, the tuned-preset lookup, the
tracking backend); when any job is refused, every refusal is printed once, with the job's
overrides, and the sweep ends with exit status 2 before it launches anything.
"""

from __future__ import annotations

import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from unlearn.errors import UserError


def jobs(config: DictConfig, sweep_overrides: list[str]) -> list[list[str]]:
    """Every job's override list, in the basic sweeper's order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(sweep_overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def refusal(overrides: list[str], config_name: str) -> str | None:
    """The one-line reason this job would be refused, or None."""
    from hydra import compose

    from unlearn import lifecycle
    from unlearn.plugins import import_user_modules

    from . import presets, tracking

    cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    choice = cfg.hydra.runtime.choices.get("submodel")
    plain = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }
    if plain.get("tune"):  # a tuning trial is not a run
        return None
    try:
        import_user_modules(plain.get("plugins"))
        presets.apply(plain, choice)
        lifecycle.check(plain)
        tracking.check(plain)
    except UserError as exc:
        return str(exc)
    return None


def check_sweep(config: DictConfig, sweep_overrides: list[str]) -> None:
    """Exit with status 2, printing each refusal once, when any job of the sweep would be refused."""
    import unlearn  # noqa: F401  (fills the registries)

    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return  # another sweeper (Optuna) draws its jobs as it goes
    name = str(config.hydra.job.get("config_name") or "config")
    refused = []
    for job in jobs(config, sweep_overrides):
        why = refusal(job, name)
        if why:
            refused.append((job, why))
    if not refused:
        return
    for job, why in refused:
        print(f"error: refused [{' '.join(job)}]: {why}", file=sys.stderr)
    print(
        f"error: {len(refused)} of the sweep's jobs would be refused; nothing was run. Narrow the sweep "
        "(e.g. drop the method or choice named above).",
        file=sys.stderr,
    )
    sys.exit(2)
