"""Running the benchmark as a user does: the CLI in a subprocess (one test per entry point), or
the same Hydra composition in-process followed by the runner's entry `benchmarks.run.execute`."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FAST = [
    "dataset=synthetic",
    "submodel.epochs=6",
    "submodel.dim=16",
    "submodel.lr=0.01",
    "runtime.progress=false",
    "runtime.threads=1",
]
# seconds a fast-suite CLI call may take (import torch and Hydra, compose, a tiny synthetic run;
# ~10-30 s on a loaded 2-core machine): generous, so that only a hang reaches it
CLI_TIMEOUT = 300
# pytest's own timeout for a test must exceed the sum of its subprocess timeouts by this much
# (conftest.py fills BUDGET per test; `cli` refuses to start a subprocess that could outlive it)
MARGIN = 60
BUDGET: dict = {}


def cli(module: str, *args: str, results: Path | None = None, timeout: int = CLI_TIMEOUT, env=None):
    limit = BUDGET.get("limit")
    if limit:
        BUDGET["used"] = BUDGET.get("used", 0) + timeout
        assert BUDGET["used"] + MARGIN <= limit, (
            f"this test's subprocess timeouts add up to {BUDGET['used']} s; with the {MARGIN} s margin that exceeds "
            f"its pytest timeout of {limit} s, which would kill it first: give it @pytest.mark.timeout(...)"
        )
    extra = [f"results_dir={results}"] if results is not None and module == "benchmarks.run" else []
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("runs/*/result.json"))]


def compose_cfg(overrides=(), return_hydra_config: bool = False):
    """conf/config.yaml composed with command-line style `overrides`, as `python -m benchmarks.run`
    composes it. Uses the Hydra initialised by the `hydra_conf` fixture (once per module);
    without it, initialises Hydra for this one call."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def run_config(overrides, results_dir) -> dict:
    """The resolved plain dict the CLI's task function hands to `execute` (Hydra removes the
    `hydra` node from the task's config, so it is not composed here)."""
    from omegaconf import OmegaConf

    from benchmarks import presets

    overrides = [*overrides, f"results_dir={results_dir}"]
    cfg = compose_cfg(overrides, return_hydra_config=True)
    choice = cfg.hydra.runtime.choices.get("submodel")
    plain = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }  # as the task function sees it: no hydra node
    return presets.apply(plain, choice)


def compose_run(overrides, results_dir, job_num: int = 0, multirun: bool = False):
    """One run in this process: the CLI's composition, then `benchmarks.run.execute`. Returns the
    record (None when skipped); a user error raises SystemExit(2), a failed run SystemExit(1)."""
    import torch

    from benchmarks.run import execute

    # the runtime sets process-wide torch state (threads, deterministic algorithms): a CLI run
    # owns its process, an in-process run hands the state back for the tests after it
    state = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        return execute(run_config(overrides, results_dir), job_num, multirun)
    finally:
        torch.set_num_threads(state[0])
        torch.use_deterministic_algorithms(state[1], warn_only=state[2])


def sweep_jobs(params: dict, extra=()) -> list[list[str]]:
    """The jobs the basic sweeper launches for `hydra.sweeper.params` (plus command-line
    overrides `extra`): the product of the comma-separated lists, as override lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + list(extra))
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in overrides
    ]
    return [list(job) for job in itertools.product(*choices)]


def small_synthetic():
    """The 160-user synthetic dataset the RecEraser and partition-refresh tests share."""
    import torch

    from unlearn.data import load_dataset

    torch.set_num_threads(1)
    return load_dataset(
        {
            "name": "synthetic",
            "loader": "synthetic",
            "generator": {"n_users": 160, "n_items": 90, "mean_per_user": 15, "seed": 1},
            "split": {"name": "random", "ratios": [0.7, 0.1, 0.2], "seed": 0},
        }
    )
