"""Everything measured of one model at one stage of a run (SPEC §2 steps 4, 6, 7; §5): utility,
membership inference, forget-hit and the configured probes, built once per run and called once
per stage (`before`, `after`, `retrain`)."""
from __future__ import annotations

import numpy as np

from ..data.deletion import DeletionRequest
from ..data.interactions import Dataset, Interactions
from ..registry import PROBES
from ..runtime import Runtime
from .completeness import MembershipProbe, forget_hits
from .ranking import RankingEvaluator, ScoreFn


def prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in metrics.items() if k != "n_eval_users"}


class StageMetrics:
    """Before unlearning, models rank every item but the user's train rows against test; after
    (and for the oracle), against the retained train rows, and a deleted user's test rows leave
    the evaluation (the user is gone from the system)."""

    def __init__(self, data: Dataset, request: DeletionRequest, cfg: dict, runtime: Runtime):
        ecfg, ccfg = cfg.get("eval") or {}, cfg.get("completeness") or {}
        ks = list(ecfg.get("ks", [10, 20, 50]))
        n_u, n_i, dev, batch = data.n_users, data.n_items, runtime.device, runtime.eval_batch
        self.n_users, self.n_items, self.device, self.batch = n_u, n_i, dev, batch
        self.retained = data.train.without(request.rows)
        self.forget = data.train.subset(request.rows)
        gone = np.zeros(n_u, dtype=bool)
        if request.unit == "user":
            gone[request.deleted_users] = True

        def evaluator(exclude: Interactions, target: Interactions) -> RankingEvaluator:
            return RankingEvaluator(n_u, n_i, exclude, target, ks, dev, batch, ecfg.get("ndcg_ideal", "capped"),
                                    active_top=float(ecfg.get("active_top", 0.05)))

        self.utility = {"before": evaluator(data.train, data.test),
                        "after": evaluator(self.retained, data.test.of_users(~gone))}
        self.utility["retrain"] = self.utility["after"]
        self.membership = MembershipProbe(self.forget, Interactions.concat([data.valid, data.test]), n_u, n_i,
                                          int(cfg.get("seed", 0)), int(ccfg.get("mia_max_pairs", 20000)), dev, batch)
        self.hit_ks = sorted({int(ccfg.get("forget_k", 20)), *ks})
        self.probes = [PROBES.get(name)(data, request, runtime) for name in ecfg.get("probes") or []]

    def measure(self, stage: str, score_fn: ScoreFn, method=None) -> dict:
        """Utility, membership AUC, forget-hit and probes of `score_fn` at `stage`."""
        out = prefixed(stage, self.utility[stage].evaluate(score_fn))
        out.update({f"{k}.{stage}": v for k, v in self.membership.measure(score_fn).items()})
        hits = forget_hits(score_fn, self.n_users, self.n_items, self.retained, self.forget, self.hit_ks,
                           self.device, self.batch)
        out.update({f"{k}.{stage}": v for k, v in hits.items()})
        for probe in self.probes:
            out.update(prefixed(stage, probe.measure(stage, score_fn, method)))
        return out

    def finish(self) -> dict:
        """What the probes measure across stages (e.g. against the oracle), once all ran."""
        out: dict = {}
        for probe in self.probes:
            out.update(probe.finish())
        return out
