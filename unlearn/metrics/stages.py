"""Everything measured of one model at one stage of a run: utility,
membership inference, forget-hit and the configured probes, built once per run and called once
per stage (`before`, `after`, `retrain`)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.deletion import DeletionRequest
from ..data.interactions import Dataset, Interactions
from ..errors import ConfigError
from ..registry import PROBES
from ..runtime import Runtime
from ..seeding import numpy_rng
from .completeness import MembershipProbe, forget_hits, mean_pairwise_cosine, popularity_scores
from .keys import KEYS
from .ranking import RankingEvaluator, ScoreFn, bootstrap_means, percentile_interval

# the stage that scores the retrain oracle: one unpartitioned model (`unlearn.oracle.oracle_spec`),
# so its users form one group whatever the method's partition
ORACLE_STAGE = "retrain"
# the metrics whose per-user values each stage keeps, for the utility loss against the oracle
LOSS_METRICS = ("recall", "ndcg")


def user_groups(method) -> np.ndarray | None:
    """The shard of every user when `method` partitions users (the groups `eval.group_average`
    averages over: CURE4Rec's groups, each scored by its own model under `aggregator=own`), else
    None (one group). A user outside the partition (-1) is scored by shard 0 (`own`), so counted there."""
    part = getattr(method, "partition", None)
    if part is None or part.unit != "user" or part.unit_shard is None:
        return None
    return np.clip(np.asarray(part.unit_shard), 0, None)


def prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in metrics.items() if k != "n_eval_users"}


def staged(stage: str, metrics: dict) -> dict:
    """`name.rest` -> `name.<stage>.rest` (`mia_auc.ci95` -> `mia_auc.after.ci95`)."""
    out = {}
    for key, value in metrics.items():
        name, dot, rest = key.partition(".")
        out[f"{name}.{stage}{dot}{rest}"] = value
    return out


class StageMetrics:
    """One candidate set and one user population for every stage (`before`, `after`, `retrain`):
    each model ranks every item but the user's retained train rows (train minus F) against the test
    rows of the users still in the system (a deleted user's test rows leave the evaluation), so the
    stages differ only in the model. The active group (top `eval.active_top` of the evaluated users
    by train count) is fixed at fit time, from the counts in all of train. Each stage keeps its
    per-user recall / NDCG (vectors over the evaluated users, never score matrices) so `finish`
    can compare `after` with the oracle user by user."""

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

        self.deleted_users = np.unique(self.forget.users)  # users who lost rows
        one = RankingEvaluator(
            n_u,
            n_i,
            self.retained,
            data.test.of_users(~gone),
            ks,
            dev,
            batch,
            ecfg.get("ndcg_ideal", "capped"),
            train_counts=data.train.user_counts(n_u),
            active_top=float(ecfg.get("active_top", 0.05)),
            hr=ecfg.get("hr", "any_hit"),
            group_average=ecfg.get("group_average", "weighted"),
        )
        self.utility = {"before": one, "after": one, "retrain": one}
        self.seed = int(cfg.get("seed", 0))
        self.loss_boot = int(ecfg.get("loss_bootstrap", 1000))
        if self.loss_boot < 0:
            raise ConfigError(f"eval.loss_bootstrap must be >= 0 (0: no interval), not {self.loss_boot}.")
        self.loss_names = [f"{m}@{k}" for m in LOSS_METRICS for k in one.ks]
        self.per_user: dict[str, dict[str, np.ndarray]] = {}  # stage -> metric -> values per evaluated user
        self.membership = MembershipProbe(
            self.forget,
            Interactions.concat([data.valid, data.test]),
            n_u,
            n_i,
            int(cfg.get("seed", 0)),
            int(ccfg.get("mia_max_pairs", 20000)),
            dev,
            batch,
            n_boot=int(ccfg.get("mia_bootstrap", 200)),
        )
        self.hit_ks = sorted({int(ccfg.get("forget_k", 20)), *ks})
        # configured probes key as `<stage>.<name>`; the probes a request kind attaches (e.g.
        # sensitive_exposure) as forget-hit does, `<name>@K.<stage>`, at forget-hit's cut-offs
        self.probes = [
            (PROBES.get(name)(data, request, runtime), prefixed)
            for name in ecfg.get("probes") or []
            if name not in request.probes
        ]
        self.probes += [(PROBES.get(name)(data, request, runtime, ks=self.hit_ks), staged) for name in request.probes]
        self.mia_reason = request.context.get("mia_reason", "the forget set's users have no held-out rows")

    def measure(self, stage: str, score_fn: ScoreFn, method=None, user_vectors=None) -> dict:
        """Utility, membership AUC (with its interval), forget-hit, the deleted users' collapse
        (`user_vectors`: users -> final user representations, or None) and probes at `stage`."""
        groups = None if stage == ORACLE_STAGE else user_groups(method)
        ev = self.utility[stage]
        values = ev.per_user(score_fn, item_groups=True)
        self.per_user[stage] = {name: values[name] for name in self.loss_names}
        out = prefixed(stage, ev.summarise(values, user_groups=groups))
        mia = self.membership.measure(score_fn)
        if self.membership.n_pairs == 0:  # nothing to attack: null, with `mia.reason`
            mia = {k: None for k in mia}
        out.update(staged(stage, mia))
        hits = forget_hits(
            score_fn, self.n_users, self.n_items, self.retained, self.forget, self.hit_ks, self.device, self.batch
        )
        out.update(staged(stage, hits))
        vectors = user_vectors(torch.as_tensor(self.deleted_users, device=self.device)) if user_vectors else None
        for reading, v in (vectors or {}).items():
            out[f"forgotten_collapse.{stage}{reading}"] = mean_pairwise_cosine(v)
        for probe, keyed in self.probes:
            out.update(keyed(stage, probe.measure(stage, score_fn, method)))
        return out

    def finish(self) -> dict:
        """What needs no model (the MIA's pairs, the popularity ranker's forget-hit) and what the
        probes measure across stages (e.g. against the oracle), once all ran."""
        out: dict = {"mia_pairs": int(self.membership.n_pairs), **self.utility_loss()}
        if self.membership.n_pairs == 0:
            out["mia.reason"] = self.mia_reason
        pop = forget_hits(
            popularity_scores(self.retained, self.n_items),
            self.n_users,
            self.n_items,
            self.retained,
            self.forget,
            self.hit_ks,
            self.device,
            self.batch,
        )
        out.update(staged("popularity", pop))
        for probe, _ in self.probes:
            out.update(probe.finish())
        return out

    def utility_loss(self) -> dict:
        """`<metric>@K.loss_vs_oracle`: the mean over the evaluated users of oracle minus `after`
        (positive: unlearning lost utility against retraining), with `.ci95`, a paired percentile
        bootstrap over users (`eval.loss_bootstrap` resamples, seeded by the run's seed; 0: None).
        Nothing when the oracle stage did not run."""
        after, oracle = self.per_user.get("after"), self.per_user.get(ORACLE_STAGE)
        if after is None or oracle is None:
            return {}
        diffs = np.stack([oracle[name] - after[name] for name in self.loss_names])
        means = diffs.mean(1) if diffs.shape[1] else np.full(len(diffs), np.nan)
        ci = None
        if self.loss_boot > 0:
            ci = percentile_interval(bootstrap_means(diffs, self.loss_boot, numpy_rng(self.seed, "utility_loss")))
        out = {}
        for i, name in enumerate(self.loss_names):
            out[f"{name}.loss_vs_oracle"] = float(means[i])
            out[f"{name}.loss_vs_oracle.ci95"] = None if ci is None else [float(ci[i, 0]), float(ci[i, 1])]
        return out


_LOSS_DOC = (
    "the mean over the evaluated users of the retrain oracle's {metric}@{{k}} minus the unlearned "
    "model's (positive: unlearning lost utility against retraining); a plain per-user mean even when "
    "the headline {metric} averages shard groups (eval.group_average=unweighted). Its .ci95 is a "
    "per-user paired bootstrap 95% interval (eval.loss_bootstrap resamples; null when 0)."
)
KEYS.declare(
    "recall@{k}.loss_vs_oracle",
    "Recall@{k} loss vs oracle",
    better="lower",
    group="utility",
    doc=_LOSS_DOC.format(metric="recall"),
)
KEYS.declare(
    "ndcg@{k}.loss_vs_oracle",
    "NDCG@{k} loss vs oracle",
    better="lower",
    group="utility",
    doc=_LOSS_DOC.format(metric="NDCG"),
)
KEYS.declare(
    "mia.reason",
    "MIA note",
    group="completeness",
    doc="why the membership keys are null: the forget set's users have no held-out rows to attack with",
)
