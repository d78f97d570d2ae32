"""The utility loss against the retrain oracle: per-user metric values, the paired bootstrap over
users behind `<metric>@K.loss_vs_oracle.ci95`, and the keys a run records."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unlearn.data.deletion import draw
from unlearn.metrics.keys import KEYS
from unlearn.metrics.ranking import RankingEvaluator, bootstrap_means, percentile_interval
from unlearn.metrics.stages import StageMetrics
from unlearn.runtime import CPU
from unlearn.seeding import numpy_rng

from .helpers import FAST, compose_run
from .test_ranking import random_case

KS = (5, 10)
LOSS_KEYS = [f"{m}@{k}.loss_vs_oracle" for m in ("recall", "ndcg") for k in KS]


def width(ci) -> float:
    return float(ci[1] - ci[0])


# --- the evaluator's per-user values -------------------------------------------------------------


def test_per_user_values_average_to_the_reported_metrics():
    scores, _, _, ex_rows, tg_rows = random_case(0, n_users=60)
    ev = RankingEvaluator(len(scores), scores.shape[1], ex_rows, tg_rows, ks=KS, batch_size=7)
    s = torch.as_tensor(scores)
    per_user = ev.per_user(lambda u: s[u], item_groups=True)
    got = ev.evaluate(lambda u: s[u])
    assert ev.summarise(per_user) == got
    for name in (f"{m}@{k}" for m in ("recall", "ndcg", "hr", "precision") for k in KS):
        values = per_user[name]
        assert len(values) == len(ev.users) == got["n_eval_users"]  # one value per evaluated user, in ev.users' order
        assert values.mean() == pytest.approx(got[name], abs=1e-12)
        assert values[ev.active].mean() == pytest.approx(got[f"{name}.active"], abs=1e-12)
    assert not np.array_equal(per_user["ndcg@5"], np.full(len(ev.users), per_user["ndcg@5"][0]))  # users differ


# --- the bootstrap -------------------------------------------------------------------------------


def paired_ci(diffs, seed=0, n_boot=1000):
    return percentile_interval(bootstrap_means(diffs, n_boot, numpy_rng(seed, "test")))[0]


def test_the_interval_contains_the_estimate_and_is_fixed_by_the_seed():
    diffs = numpy_rng(1, "diffs").normal(0.02, 0.1, 500)
    low, high = paired_ci(diffs)
    assert low < diffs.mean() < high and low < high
    assert np.array_equal(paired_ci(diffs, seed=0), paired_ci(diffs, seed=0))
    assert not np.array_equal(paired_ci(diffs, seed=0), paired_ci(diffs, seed=1))


def test_the_interval_matches_a_plain_resampling_loop():
    """The counts-matrix bootstrap (chunked) draws the same resamples as indexing user by user."""
    diffs = numpy_rng(2, "diffs").normal(0.0, 1.0, (3, 50))
    got = bootstrap_means(diffs, 40, numpy_rng(0, "t"), max_cells=50 * 7)  # chunks of 7 resamples
    rng = numpy_rng(0, "t")
    want = np.concatenate([diffs[:, rng.integers(0, 50, (min(7, 40 - s), 50))].mean(2) for s in range(0, 40, 7)], 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_the_interval_shrinks_with_more_users():
    rng = numpy_rng(3, "diffs")
    few, many = rng.normal(0.02, 0.1, 200), rng.normal(0.02, 0.1, 20000)
    assert width(paired_ci(many)) < width(paired_ci(few)) / 4  # about 1/sqrt(100)


def test_identical_stages_give_zero_loss_and_a_zero_width_interval():
    after = numpy_rng(4, "metric").random((2, 300))
    reps = bootstrap_means(after - after, 200, numpy_rng(0, "t"))
    assert np.all(reps == 0.0)
    assert percentile_interval(reps).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_a_paired_interval_is_narrower_than_an_unpaired_one_on_correlated_stages():
    rng = numpy_rng(5, "metric")
    user = rng.random(2000)  # how well each user is served: shared by both models
    after = user + rng.normal(0, 0.02, 2000)
    oracle = user + 0.01 + rng.normal(0, 0.02, 2000)
    paired = paired_ci(oracle - after)
    unpaired = percentile_interval(
        bootstrap_means(oracle, 1000, numpy_rng(0, "a")) - bootstrap_means(after, 1000, numpy_rng(0, "b"))
    )[0]
    assert paired[0] < 0.01 < paired[1] and unpaired[0] < 0.01 < unpaired[1]
    assert width(paired) < width(unpaired) / 5


# --- StageMetrics --------------------------------------------------------------------------------


def stage_metrics(data, seed=0, **ecfg):
    request = draw(data.train, data.n_users, data.n_items, {"unit": "interaction", "count": 30}, 0)
    cfg = {"seed": seed, "eval": {"ks": list(KS), **ecfg}, "completeness": {"mia_bootstrap": 10}}
    return StageMetrics(data, request, cfg, CPU)


def score_fns(data):
    """The oracle's scores, and an unlearned model's: the oracle's with noise (users keep their ranks roughly)."""
    g = torch.Generator().manual_seed(0)
    oracle = torch.rand(data.n_users, data.n_items, generator=g)
    after = oracle + 0.6 * torch.rand(data.n_users, data.n_items, generator=g)
    return (lambda u: after[u]), (lambda u: oracle[u])


def run_stages(sm, after, oracle, method=None):
    rec = {**sm.measure("before", oracle, method), **sm.measure("after", after, method)}
    rec.update(sm.measure("retrain", oracle, method))
    rec.update(sm.finish())
    return rec


def test_the_loss_is_the_oracle_minus_after_with_a_seeded_interval(synthetic):
    after, oracle = score_fns(synthetic)
    rec = run_stages(stage_metrics(synthetic), after, oracle)
    for key in LOSS_KEYS:
        metric = key.split(".")[0]
        assert rec[key] == pytest.approx(rec[f"retrain.{metric}"] - rec[f"after.{metric}"], abs=1e-12)
        low, high = rec[f"{key}.ci95"]
        assert low <= rec[key] <= high and low < high
    assert rec["ndcg@10.loss_vs_oracle"] > 0  # the noise costs utility
    again = run_stages(stage_metrics(synthetic), after, oracle)
    other = run_stages(stage_metrics(synthetic, seed=1), after, oracle)
    assert all(again[f"{k}.ci95"] == rec[f"{k}.ci95"] for k in LOSS_KEYS)
    assert any(other[f"{k}.ci95"] != rec[f"{k}.ci95"] for k in LOSS_KEYS)


def test_the_loss_is_a_plain_user_mean_under_group_averaging(synthetic):
    after, oracle = score_fns(synthetic)
    shards = np.arange(synthetic.n_users) % 3
    shards[shards == 2] = 0  # unequal groups: the mean of group means differs from the user mean
    method = SimpleNamespace(partition=SimpleNamespace(unit="user", unit_shard=shards))
    sm = stage_metrics(synthetic, group_average="unweighted")
    rec = run_stages(sm, after, oracle, method)
    plain = sm.per_user["retrain"]["ndcg@10"].mean() - sm.per_user["after"]["ndcg@10"].mean()
    assert rec["ndcg@10.loss_vs_oracle"] == pytest.approx(plain, abs=1e-12)
    assert rec["ndcg@10.loss_vs_oracle"] != pytest.approx(rec["retrain.ndcg@10"] - rec["after.ndcg@10"], abs=1e-9)


def test_no_interval_with_zero_resamples_and_no_loss_without_the_oracle(synthetic):
    after, oracle = score_fns(synthetic)
    rec = run_stages(stage_metrics(synthetic, loss_bootstrap=0), after, oracle)
    assert all(rec[f"{k}.ci95"] is None and np.isfinite(rec[k]) for k in LOSS_KEYS)
    sm = stage_metrics(synthetic)
    sm.measure("before", oracle)
    sm.measure("after", after)
    assert not any("loss_vs_oracle" in key for key in sm.finish())


def test_a_negative_resample_count_is_a_user_error(synthetic):
    from unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="loss_bootstrap"):
        stage_metrics(synthetic, loss_bootstrap=-1)


# --- a run's record ------------------------------------------------------------------------------

UTILITY = re.compile(r"^(before|after|retrain)\.(recall|ndcg|hr|precision)@\d+(\.\w+)?$")


@pytest.mark.usefixtures("hydra_conf")
def test_retrain_records_zero_loss_and_declares_its_utility_keys(tmp_path):
    """`retrain`'s unlearned model is the oracle itself: no loss, a zero-width interval."""
    rec = compose_run(["method=retrain", *FAST], tmp_path / "on")
    assert rec["status"] == "ok"
    for m in ("recall", "ndcg"):
        for k in (10, 20, 50):
            assert rec[f"{m}@{k}.loss_vs_oracle"] == 0.0 and rec[f"{m}@{k}.loss_vs_oracle.ci95"] == [0.0, 0.0]
    utility = [key for key in rec if UTILITY.match(key) or key.endswith(".loss_vs_oracle")]
    assert len(utility) > 100 and all(KEYS.get(key) for key in utility)
    assert all(KEYS.get(key).group == "utility" for key in utility)
    info = KEYS.get("after.ndcg@20")
    assert (info.label, info.sub, info.better, info.reference) == ("NDCG@20", "after", "higher", False)
    assert KEYS.get("retrain.recall@10.active").reference and KEYS.get("retrain.recall@10.active").better is None
    loss = KEYS.get("ndcg@20.loss_vs_oracle")
    assert (loss.label, loss.better) == ("NDCG@20 loss vs oracle", "lower") and "per-user mean" in loss.doc
    assert KEYS.get("ndcg@20.loss_vs_oracle.ci95") is None  # an annotation of its key, not a column

    rec = compose_run(["method=retrain", "completeness.retrain_oracle=false", *FAST], tmp_path / "off")
    assert rec["status"] == "ok" and "after.ndcg@20" in rec
    assert not any("loss_vs_oracle" in key for key in rec)
