"""The tuning objective: a sub-model's validation score as `method=retrain` trains it.

`validation_score(cfg, runtime)` fits the configured method (retrain: one sub-model on all of the
dataset's train rows, its validation rows carved from train) from the run's seed and evaluates the
fitted model on the validation split with the full-sort evaluator (the candidates exclude the
train rows). The test split is never loaded into the fit or the evaluation. A Hydra sweeper (see
`benchmarks/tune.py`) maximises it; the same config and seed give the same score on CPU, so a
preset written from the best trial reproduces it.
"""

from __future__ import annotations

import time

from .data import TrainSet, load_dataset
from .errors import ConfigError
from .metrics.ranking import RankingEvaluator
from .registry import METHODS
from .runtime import Runtime


def validation_score(cfg: dict, runtime: Runtime, metric: str) -> dict:
    """{metric: value, "seconds", "epochs", "best_epoch", "stop_reason"} of one tuning trial."""
    from .lifecycle import method_spec

    try:
        k = int(str(metric).split("@")[1])
    except (IndexError, ValueError):
        raise ConfigError(f"tune.metric must look like ndcg@20 or recall@20, got '{metric}'.") from None
    start = time.perf_counter()
    spec = method_spec(cfg)
    data = load_dataset(cfg["dataset"], cfg.get("cache_dir"))
    if not len(data.valid):
        raise ConfigError(
            f"dataset={data.name} has no validation rows to tune on; "
            "tuning never reads test (give the dataset's split a valid_ratio)."
        )
    train = TrainSet(data.n_users, data.n_items, data.train, data.valid, features=data.info.get("features"))
    method = METHODS.get(spec["method"]["name"])(spec, runtime, None)
    method.validate(train)
    method.fit(train)
    evaluator = RankingEvaluator(
        data.n_users,
        data.n_items,
        data.train,
        data.valid,
        ks=(k,),
        device=runtime.device,
        batch_size=runtime.eval_batch,
    )
    value = evaluator.evaluate(method.score, groups=False)
    if metric not in value:
        raise ConfigError(
            f"tune.metric '{metric}' is not a ranking metric; valid: "
            f"{', '.join(sorted(m for m in value if m.endswith(f'@{k}')))}."
        )
    described = method.describe()
    return {
        metric: float(value[metric]),
        "seconds": time.perf_counter() - start,
        "epochs": described.get("shard_epochs", [None])[0],
        "best_epoch": described.get("shard_best_epochs", [None])[0],
        "stop_reason": described.get("shard_stop_reasons", [None])[0],
    }
