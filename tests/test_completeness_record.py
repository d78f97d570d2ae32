"""The completeness keys of a real record: rank gaps against the oracle and their seed
floor, MIA intervals and pairs, forget-hit baselines, the deleted users' collapse."""

import pytest

from .helpers import FAST, compose_run

pytestmark = pytest.mark.usefixtures("hydra_conf")


def test_retrain_record_rank_gap_is_zero_and_its_seed_floor_is_not(tmp_path):
    rec = compose_run(["method=retrain", *FAST], tmp_path)
    assert rec["status"] == "ok"
    for k in (10, 20, 50):  # the oracle is this very model: identical top-K lists
        assert rec[f"retrain_rank_gap@{k}"] == 0.0 and rec[f"retrain_rank_gap@{k}.deleted"] == 0.0
        assert rec[f"seed_floor@{k}"] > 0.0  # two retrains that differ only in seed do differ
        assert rec[f"rank_gap_over_floor@{k}"] == 0.0
    assert rec["retrain_gap"] == 0.0 and rec["retrain_gap.raw"] == 0.0 and rec["seed_floor.retrain_gap"] > 0.0
    assert rec["mia_pairs"] > 0
    for stage in ("before", "after", "retrain"):
        low, high = rec[f"mia_auc.{stage}.ci95"]
        assert low <= rec[f"mia_auc.{stage}"] <= high
        assert f"mia_lr_auc.{stage}.ci95" in rec and f"forgotten_collapse.{stage}" in rec
    assert 0.0 <= rec["forget_hit@20.popularity"] <= 1.0
    assert rec["forgotten_collapse.after"] == rec["forgotten_collapse.retrain"]
    assert rec["partition_drift"] == 0.0  # one shard, built from nothing trained


def test_the_seed_floor_can_be_switched_off(tmp_path):
    rec = compose_run(["method=retrain", "completeness.seed_floor=false", *FAST], tmp_path)
    assert "seed_floor@20" not in rec and "retrain_rank_gap@20" in rec


def test_unlearn_als_traces_converge_to_the_oracle_objective(synthetic):
    """The convergence figure's target is the retrain oracle: its objective on the retained data
    and the per-sweep rank gap to it, for warm and cold starts alike."""
    import numpy as np

    from unlearn.data.deletion import draw
    from unlearn.data.interactions import TrainSet
    from unlearn.methods.unlearn_als import UnlearnALS
    from unlearn.registry import METHODS

    from .test_als import als_spec

    d = synthetic
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 6}, 0)
    spec = als_spec(method={"name": "unlearn_als", "tol": 1e-12, "max_sweeps": 300, "cold_trace": True})
    m = UnlearnALS(spec)
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    oracle = METHODS.get("retrain")({**spec, "method": {"name": "retrain"}})
    oracle.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid).without(req.rows))
    m.set_reference(oracle.score, oracle)
    m.unlearn(req.rows)
    rec = m.describe()
    target = rec["unlearn.oracle_objective"]
    assert target == pytest.approx(oracle.shards[0].objective(), rel=1e-9)
    warm = np.array(rec["unlearn.objective_trace"])
    assert (warm[0] - target) / target > 1e-4 and abs(warm[-1] - target) / target < 1e-6
    ranks = rec["unlearn.rank_gap_trace"]
    assert len(ranks) == len(warm) == len(rec["unlearn.rank_gap_trace.deleted"])
    assert ranks[-1] < ranks[0] and ranks[-1] < 0.05
    assert len(rec["retrain.rank_gap_trace"]) == len(rec["retrain.objective_trace"])
