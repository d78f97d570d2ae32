"""The completeness keys of a real record (issue 12): rank gaps against the oracle and their seed
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
