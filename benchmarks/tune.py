"""Tuning as a sweep: Hydra's Optuna sweeper maximises a sub-model's validation score for
`method=retrain` (or, with `method=<name>`, that method's own validation score: its shards tuned
where they train), and the best trial becomes a named preset.

    python -m benchmarks.run -m experiment=tune_bpr dataset=ml100k
    python -m benchmarks.run method=sisa submodel=tuned/ml100k_bpr     # every method uses it by name

An experiment `tune_<submodel>` sets `tune: {metric, preset_root}`, the sweeper (seeded TPE, a
trial budget) and the search space (`hydra.sweeper.params`). With `tune` in the config the runner's
task function returns `objective(cfg)`: the validation score of `unlearn.tuning.validation_score`
(test is never read), one line per trial in `<sweep dir>/trials.jsonl`. At the end of the sweep
the `WritePreset` callback writes `<preset_root>/submodel/tuned/<dataset>_<submodel>.yaml`: the
sub-model's settings with the best trial's values, and a header with the search space, the trial
count, the validation score, the tuning time and the commit. A search over a method's own keys
(`experiment=tune_eemu`: `method.lr`, ...) writes `<preset_root>/method/<name>.yaml` instead: a
preset extending the method option it tuned, stating only the best values, with the same header.

The search starts from the preset being tuned: `start_from_preset` (the sweeper's
`custom_search_space` hook) queues one trial at that preset's own values of the swept keys (the
class defaults, or a named preset), so a tuned preset is never worse on validation than the
preset it started from. The sweeper asks a batch of `n_jobs` trials before it configures them, so
that trial is the first of the second batch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from unlearn import io

from .presets import CONF, preset_name
from .records import cpu_name, git

log = logging.getLogger("benchmarks.tune")
TRIALS = "trials.jsonl"
TUNABLE = ("submodel.", "method.")  # the groups whose keys a tuning sweep may search


def tuned_group(keys) -> str:
    """`submodel` or `method`: the one group every swept key belongs to (a preset is one group's)."""
    groups = {k.split(".", 1)[0] for k in keys}
    if len(groups) != 1 or not groups <= {"submodel", "method"}:
        raise ValueError(
            f"tuning swept {', '.join(sorted(keys))}: a preset is written for submodel.* keys or for "
            "method.* keys, not for both or others"
        )
    return groups.pop()


def objective(cfg: dict, job_num: int = 0) -> float:
    """One trial: the validation score of method=retrain with this trial's sub-model settings."""
    import unlearn  # noqa: F401  (fills the registries)
    from unlearn.plugins import import_user_modules
    from unlearn.runtime import Runtime
    from unlearn.tuning import validation_score

    import_user_modules(cfg.get("plugins"))
    metric = cfg["tune"]["metric"]
    result = validation_score(cfg, Runtime.from_config(cfg.get("runtime") or {}, job_num), metric)
    trial = {"job": job_num, "params": _swept(cfg), **result}
    log.info("trial %d: %s = %.5f (%s, %.1f s)", job_num, metric, result[metric], trial["params"], result["seconds"])
    try:
        sweep_dir = Path(HydraConfig.get().sweep.dir)
    except ValueError:  # called outside Hydra (tests)
        sweep_dir = None
    if sweep_dir is not None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / TRIALS, "a") as f:  # one short line per trial: appends do not interleave
            f.write(json.dumps(trial) + "\n")
    return float(result[metric])


def _swept(cfg: dict) -> dict:
    """This trial's values of the swept sub-model keys (from Hydra's task overrides)."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return {}
    keys = [o.split("=", 1)[0] for o in overrides if o.startswith(TUNABLE)]
    return {k: OmegaConf.select(OmegaConf.create(cfg), k) for k in keys}


def start_values(config, names) -> dict:
    """The composed config's own values of the swept keys (`submodel.lr`, ...); `config` a
    DictConfig or its plain-dict form."""
    config = config if OmegaConf.is_config(config) else OmegaConf.create(config)
    return {name: OmegaConf.select(config, name) for name in names}


def _inside(distribution, value) -> bool:
    """Whether an Optuna distribution can take `value` (a choice among its choices, a number in range)."""
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return value in choices
    try:
        return distribution.low <= float(value) <= distribution.high
    except (TypeError, ValueError):
        return False


def start_from_preset(config: DictConfig, trial) -> None:
    """`hydra.sweeper.custom_search_space`: on the sweep's first trial, queue a trial at the
    composed preset's own values of the swept keys (once per study)."""
    study = trial.study
    if study.user_attrs.get("start_queued"):
        return
    study.set_user_attr("start_queued", True)
    start = start_values(config, trial.distributions)
    outside = [f"{k}={v}" for k, v in start.items() if not _inside(trial.distributions[k], v)]
    if outside:
        log.warning("the preset's own %s lie outside the search space: no trial starts from it", ", ".join(outside))
        return
    study.enqueue_trial(start)
    log.info("queued a trial at the preset's own values: %s", start)


class WritePreset(Callback):
    """At the end of a tuning sweep: the best trial's settings as a preset. Swept submodel.* keys
    give conf/submodel/tuned/<dataset>_<submodel>.yaml (the sub-model's settings in full); swept
    method.* keys give conf/method/<tune.method_preset>.yaml (default `<method option>_tuned`), a
    preset extending the method option tuned with the best values."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.perf_counter()
        try:  # refuse a search no preset can hold before any trial runs
            tuned_group(OmegaConf.select(config, "hydra.sweeper.params") or {})
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results = sweep_dir / "optimization_results.yaml"
        if not results.exists():
            log.error("no %s: the sweep ended without a best trial; no preset written", results)
            return
        best = OmegaConf.to_container(OmegaConf.load(results), resolve=True)
        # the task's config, resolved, and the sweeper's settings as written (hydra.job.* is unset here)
        cfg = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in config.items()
            if k != "hydra"
        }
        cfg["hydra"] = {
            "sweeper": OmegaConf.to_container(config.hydra.sweeper, resolve=False),
            "overrides": list(config.hydra.overrides.task),
        }
        trials = (
            [json.loads(line) for line in (sweep_dir / TRIALS).read_text().splitlines()]
            if (sweep_dir / TRIALS).exists()
            else []
        )
        root = Path(cfg["tune"].get("preset_root") or CONF)
        seconds = time.perf_counter() - getattr(self, "started", time.perf_counter())
        if tuned_group(best["best_params"]) == "method":
            option = OmegaConf.select(config, "hydra.runtime.choices.method") or cfg["method"]["name"]
            name = cfg["tune"].get("method_preset") or f"{option}_tuned"
            path = root / "method" / f"{name}.yaml"
            text, choice = render_method_preset(cfg, option, name, best, trials, seconds), f"method={name}"
        else:
            path = root / "submodel" / "tuned" / f"{preset_name(cfg)}.yaml"
            text, choice = render_preset(cfg, best, trials, seconds), f"submodel=tuned/{preset_name(cfg)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write_text(path, text)
        if path.parent.name == "tuned":
            io.write_text(path.parent / "README.md", preset_index(path.parent))
        log.info("wrote preset %s (%s): valid %s = %.5f", path, choice, cfg["tune"]["metric"], best["best_value"])


def render_preset(cfg: dict, best: dict, trials: list, seconds: float) -> str:
    import unlearn  # noqa: F401
    from unlearn.registry import SUBMODELS

    sub = dict(cfg["submodel"])
    for key, value in best["best_params"].items():
        sub[key.split(".", 1)[1]] = value
    defaults = SUBMODELS.get(sub["name"]).defaults
    changed = [f"{k} ({sub[k]})" for k in sub if k != "name" and k in defaults and sub[k] != defaults[k]]
    lines = [
        f"Tuned preset: {sub['name']} on {cfg['dataset']['name']}, for every method's shards by name "
        f"(submodel=tuned/{preset_name(cfg)}).",
        *_sweep_lines(cfg, best, trials, seconds),
        "differs from the class defaults in: " + (", ".join(changed) or "nothing"),
    ]
    header = "\n".join("# " + line for line in _wrap(lines))
    return header + "\n" + yaml.safe_dump(sub, sort_keys=False)


def render_method_preset(cfg: dict, option: str, name: str, best: dict, trials: list, seconds: float) -> str:
    """A method preset that extends the option it tuned (`defaults: [<option>, _self_]`) and states
    only the best trial's values of the swept method.* keys."""
    own = {key.split(".", 1)[1]: value for key, value in best["best_params"].items()}
    changed = [f"{k} ({v})" for k, v in own.items()]
    lines = [
        f"Tuned preset: method={option} on {cfg['dataset']['name']} with submodel {cfg['submodel']['name']}, "
        f"by name (method={name}).",
        *_sweep_lines(cfg, best, trials, seconds),
        f"differs from {option} in: " + ", ".join(changed),
    ]
    header = "\n".join("# " + line for line in _wrap(lines))
    return header + "\n" + yaml.safe_dump({"defaults": [option, "_self_"], **own}, sort_keys=False)


def _sweep_lines(cfg: dict, best: dict, trials: list, seconds: float) -> list[str]:
    """How a preset was tuned: the command, the sampler, the score, the search space, the cost."""
    sweeper = cfg["hydra"]["sweeper"]
    space = "; ".join(f"{k}: {v}" for k, v in sweeper["params"].items())
    sampler = sweeper.get("sampler") or {}
    metric = cfg["tune"]["metric"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return [
        f"Written by `python -m benchmarks.run -m {' '.join(cfg['hydra'].get('overrides') or [])}`: "
        f"method={cfg['method']['name']}, seed {cfg.get('seed', 0)}, "
        f"Optuna {sampler.get('_target_', '').rsplit('.', 1)[-1]} "
        f"(seed {sampler.get('seed')}), {len(trials) or sweeper.get('n_trials')} trials.",
        f"Validation {metric} of the best trial: {best['best_value']:.5f} (the test split is never read).",
        f"Search space: {space}.",
        f"Tuning time: {seconds:.0f} s on {cpu_name()} x{os.cpu_count()}, "
        f"{cfg.get('runtime', {}).get('threads')} thread(s) a trial, {sweeper.get('n_jobs', 1)} at once; "
        f"commit {commit}{dirty}, {when}.",
        *_start_line(cfg, trials, metric),
    ]


def _start_line(cfg: dict, trials: list, metric: str) -> list[str]:
    """The trial at the starting preset's own values (`start_from_preset`), when one ran."""
    names = list(cfg["hydra"]["sweeper"]["params"])
    start = start_values(cfg, names)
    ran = [t for t in trials if all((t.get("params") or {}).get(k) == v for k, v in start.items())]
    if not ran:
        return []
    return [
        f"The search included the starting preset's own values ({', '.join(f'{k}={v}' for k, v in start.items())}): "
        f"validation {metric} {ran[0][metric]:.5f}."
    ]


def _wrap(lines: list[str], width: int = 98) -> list[str]:
    import textwrap

    return [part for line in lines for part in textwrap.wrap(line, width) or [""]]


def preset_index(folder: Path) -> str:
    """conf/submodel/tuned/README.md: one row per tuned preset, read from the presets' headers."""
    import re

    patterns = {
        "metric": r"Validation (\S+) of the best trial",
        "score": r"of the best trial: ([0-9.]+)",
        "trials": r"([0-9]+) trials",
        "time": r"Tuning time: ([0-9]+ s)",
        "commit": r"commit ([0-9a-f]+)",
    }
    rows = []
    for f in sorted(folder.glob("*.yaml")):
        head = " ".join(line[2:] for line in f.read_text().splitlines() if line.startswith("# "))
        got = {k: (re.search(v, head) or [None, "?"])[1] for k, v in patterns.items()}
        rows.append(
            f"| `tuned/{f.stem}` | {got['metric']} = {got['score']} | {got['trials']} | {got['time']} "
            f"| {got['commit']} |"
        )
    return (
        "# Tuned sub-model presets\n\nWritten by `experiment=tune_<submodel>` (benchmarks/tune.py; "
        "`make tune SUBMODEL=... DATASET=...`), one per (dataset, sub-model), used by name "
        "(`submodel=tuned/<name>`) or by `presets=tuned`. Each file's header has the search "
        "space, the machine and the full command. This index is rewritten with every preset.\n\n"
        "| preset | validation score | trials | tuning time | commit |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
