"""`protocol=cure4rec` (conf/protocol/cure4rec.yaml): CURE4Rec's split without a validation carve-out,
a fixed budget of 50 epochs, dim 32, Adam 1e-3, no L2, the uncapped NDCG ideal, their HR, each
group scored by its own model and the groups averaged unweighted. The evaluator options it needs
(`eval.hr`, `eval.group_average`) leave the default records as they were."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from unlearn.data.deletion import draw
from unlearn.data.interactions import Interactions
from unlearn.data.splits import published_split
from unlearn.errors import ConfigError
from unlearn.metrics.ranking import RankingEvaluator
from unlearn.metrics.stages import StageMetrics
from unlearn.partition.base import Partition
from unlearn.runtime import CPU

from .helpers import compose_cfg, compose_run

CONF = Path(__file__).resolve().parents[1] / "conf"
METHODS = ["retrain", "sisa", "receraser", "ultrare"]
DATASETS = ["ml100k_cure4rec", "ml1m_cure4rec", "adm_cure4rec"]
# a small slice: a few epochs, the completeness extras that refit models off
SMALL = [
    "submodel.epochs=2",
    "runtime.threads=1",
    "runtime.progress=false",
    "completeness.seed_floor=false",
    "completeness.exact_replica=false",
    "completeness.partition_drift=false",
]


# CURE4Rec's utils.py, lines 11-32, transcribed: the reference the evaluator must reproduce
def their_hit(gt_items, pred_items):
    return sum(1 for g in gt_items if g in pred_items) / len(gt_items)


def their_ndcg(gt_items, pred_items):
    dcg = sum(1 / math.log2(pred_items.index(g) + 2) for g in gt_items if g in pred_items)
    idcg = sum(1 / math.log2(i + 2) for i in range(len(gt_items)))
    return dcg / idcg


def rows(pairs):
    return Interactions(np.array([u for u, _ in pairs]), np.array([i for _, i in pairs]), np.ones(len(pairs)))


def plain(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.usefixtures("hydra_conf")
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
def test_preset_composes_with_the_stated_values(method, dataset):
    cfg = plain(compose_cfg(["protocol=cure4rec", f"method={method}", f"dataset={dataset}"]))
    assert cfg["dataset"]["name"] == dataset
    assert cfg["dataset"]["split"] == {"name": "published", "valid_ratio": 0, "seed": 0}
    sub = cfg["submodel"]
    assert (sub["selection"], sub["epochs"], sub["dim"], sub["optimizer"], sub["lr"], sub["reg"]) == (
        "last",
        50,
        32,
        "adam",
        1e-3,
        0.0,
    )
    assert {k: cfg["eval"][k] for k in ("ndcg_ideal", "hr", "group_average")} == {
        "ndcg_ideal": "all",
        "hr": "recall",
        "group_average": "unweighted",
    }
    assert cfg["aggregator"] == ({"name": "none"} if method == "retrain" else {"name": "own"})
    assert (cfg["deletion"]["unit"], cfg["deletion"]["selection"], cfg["deletion"]["ratio"]) == ("user", "random", 0.05)


@pytest.mark.usefixtures("hydra_conf")
def test_without_the_preset_nothing_changes_and_the_command_line_wins():
    default = plain(compose_cfg(["method=sisa"]))
    assert default["aggregator"]["name"] == "mean" and default["dataset"]["name"] == "ml100k"
    assert (default["eval"]["hr"], default["eval"]["group_average"], default["eval"]["ndcg_ideal"]) == (
        "any_hit",
        "weighted",
        "capped",
    )
    cfg = plain(compose_cfg(["protocol=cure4rec", "method=ultrare", "aggregator=linear", "submodel.epochs=3"]))
    assert cfg["aggregator"]["name"] == "linear" and cfg["submodel"]["epochs"] == 3


@pytest.mark.usefixtures("hydra_conf")
def test_every_partitioner_has_its_aggregator_under_the_preset():
    """The preset picks the aggregator by partitioner (own for every user grouping, none for none):
    a partitioner added without its file would fail to compose under the preset."""
    options = sorted(p.stem for p in (CONF / "partitioner").glob("*.yaml"))
    mapped = sorted(p.stem for p in (CONF / "protocol" / "cure4rec_aggregator").glob("*.yaml"))
    assert options == mapped
    for option in options:
        cfg = compose_cfg(["protocol=cure4rec", "method=sisa", f"partitioner={option}"])
        assert cfg.aggregator.name == ("none" if option == "none" else "own"), option


def test_hr_and_ndcg_on_a_hand_made_example_equal_their_definitions():
    # user 0: item 0 in train (masked), test {1, 2, 5}, ranking 1 > 3 > 2 > 4 > 5; user 1: test {4}
    scores = torch.tensor([[9.0, 5.0, 3.0, 4.0, 2.0, 1.0], [0.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    exclude, target = rows([(0, 0)]), rows([(0, 1), (0, 2), (0, 5), (1, 4)])
    ranked = {0: [1, 3, 2, 4, 5], 1: [0, 1, 2, 3, 4, 5]}
    gt = {0: [1, 2, 5], 1: [4]}
    ev = RankingEvaluator(2, 6, exclude, target, ks=(2, 3), ndcg_ideal="all", hr="recall")
    got = ev.evaluate(lambda u: scores[u].clone(), groups=False)
    for k in (2, 3):
        hr = np.mean([their_hit(gt[u], ranked[u][:k]) for u in (0, 1)])
        ndcg = np.mean([their_ndcg(gt[u], ranked[u][:k]) for u in (0, 1)])
        assert got[f"hr@{k}"] == pytest.approx(hr, abs=1e-12) and got[f"ndcg@{k}"] == pytest.approx(ndcg, abs=1e-12)
        assert got[f"hr@{k}"] == got[f"recall@{k}"]
    assert got["hr@2"] == pytest.approx((1 / 3 + 0) / 2) and got["hr@3"] == pytest.approx((2 / 3 + 0) / 2)
    anyhit = RankingEvaluator(2, 6, exclude, target, ks=(2,)).evaluate(lambda u: scores[u].clone(), groups=False)
    assert anyhit["hr@2"] == pytest.approx(0.5)  # the default: user 0 has a hit, user 1 none


def test_unweighted_group_average_on_a_hand_made_example():
    # users 0, 1 in group 0 (HR@1: 1, 0), user 2 in group 1 (HR@1: 1), user 3 in group 2 without test rows
    scores = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    target = rows([(0, 0), (1, 1), (2, 0)])
    groups = np.array([0, 0, 1, 2])
    kwargs = dict(ks=(1,), train_counts=np.array([5, 1, 1, 1]), active_top=0.3)  # one active user: user 0
    weighted = RankingEvaluator(4, 2, rows([]), target, **kwargs).evaluate(
        lambda u: scores[u].clone(), user_groups=groups
    )
    unweighted = RankingEvaluator(4, 2, rows([]), target, group_average="unweighted", **kwargs).evaluate(
        lambda u: scores[u].clone(), user_groups=groups
    )
    assert weighted["hr@1"] == pytest.approx(2 / 3) and "n_eval_groups" not in weighted
    assert unweighted["hr@1"] == pytest.approx((0.5 + 1.0) / 2) and unweighted["n_eval_groups"] == 2
    # active / inactive stay means over their users (CURE4Rec weights its groups by their counts)
    for key in ("hr@1.active", "hr@1.inactive"):
        assert unweighted[key] == weighted[key]
    assert (unweighted["hr@1.active"], unweighted["hr@1.inactive"]) == (1.0, 0.5)
    # without a grouping, unweighted is the plain mean
    none = RankingEvaluator(4, 2, rows([]), target, group_average="unweighted", **kwargs).evaluate(
        lambda u: scores[u].clone()
    )
    assert none["hr@1"] == pytest.approx(2 / 3) and none["n_eval_groups"] == 1


@pytest.mark.usefixtures("hydra_conf")
def test_default_config_gives_the_same_metric_values_as_before(synthetic):
    """The default eval config on synthetic, with a user partition in play: the values of the old
    definitions (any-hit HR, the mean over users) and the old keys, nothing added."""
    d = synthetic
    cfg = plain(compose_cfg(["dataset=synthetic"]))
    request = draw(d.train, d.n_users, d.n_items, cfg["deletion"], 0)
    stages = StageMetrics(d, request, cfg, CPU)
    unit_shard = np.arange(d.n_users) % 3
    method = SimpleNamespace(partition=Partition("user", 3, unit_shard[d.train.users], unit_shard))
    scores = torch.as_tensor(np.random.default_rng(0).random((d.n_users, d.n_items)), dtype=torch.float32)
    out = {
        k: v
        for k, v in stages.measure("before", lambda u: scores[u].clone(), method).items()
        if k.split(".")[1].split("@")[0] in ("recall", "ndcg", "hr", "precision", "n_eval_groups")
    }
    ev = stages.utility["before"]
    gone = np.zeros(d.n_users, dtype=bool)
    gone[request.deleted_users] = True
    test = d.test.of_users(~gone)
    ex = {u: stages.retained.items[stages.retained.users == u] for u in ev.users}
    ref = {f"{m}@{k}": [] for m in ("recall", "ndcg", "hr", "precision") for k in (10, 20, 50)}
    for u in ev.users:
        s = scores[u].clone()
        s[torch.as_tensor(ex[u], dtype=torch.long)] = -torch.inf
        top = sorted(range(d.n_items), key=lambda i: (-float(s[i]), i))
        t = set(test.items[test.users == u].tolist())
        for k in (10, 20, 50):
            hits = [1.0 if i in t else 0.0 for i in top[:k]]
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(t))))
            ref[f"recall@{k}"].append(sum(hits) / len(t))
            ref[f"precision@{k}"].append(sum(hits) / k)
            ref[f"hr@{k}"].append(float(sum(hits) > 0))
            ref[f"ndcg@{k}"].append(sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / idcg)
    want = {}
    for name, values in ref.items():
        values = np.array(values)
        want[f"before.{name}"] = values.mean()
        want[f"before.{name}.active"] = values[ev.active].mean()
        want[f"before.{name}.inactive"] = values[~ev.active].mean()
    overall = {k: v for k, v in out.items() if k.count(".") == 1 or k.endswith(("active", "inactive"))}
    assert overall.keys() == want.keys()  # no n_eval_groups, nothing else new
    for key, value in want.items():
        assert overall[key] == pytest.approx(value, abs=1e-12), key


def test_bad_options_are_refused_with_the_valid_choices():
    args = (2, 2, rows([]), rows([(0, 0)]))
    with pytest.raises(ConfigError, match="eval.hr 'hits'.*any_hit, recall"):
        RankingEvaluator(*args, hr="hits")
    with pytest.raises(ConfigError, match="eval.group_average 'groups'.*weighted, unweighted"):
        RankingEvaluator(*args, group_average="groups")


def test_published_split_without_a_validation_carve_out():
    import pandas as pd

    train = pd.DataFrame({"user": np.repeat(np.arange(4), 10), "item": np.tile(np.arange(10), 4), "rating": 1.0})
    test = pd.DataFrame({"user": np.arange(4), "item": np.full(4, 10), "rating": 1.0})
    tr, va, te = published_split({"train": train, "test": test}, {"valid_ratio": 0}, 0)
    assert (len(tr), len(va), len(te)) == (40, 0, 4)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="valid_ratio must be a fraction in \\[0, 1\\)"):
            published_split({"train": train, "test": test}, {"valid_ratio": bad}, 0)


@pytest.mark.parametrize("method", ["retrain", "sisa"])
def test_preset_runs_end_to_end_on_a_small_slice(method, tmp_path):
    """CURE4Rec's ML-100K, two epochs: no validation rows, a fixed budget, HR = recall, each group
    scored by its own shard, the groups counted (the oracle stage is one model)."""
    rec = compose_run(
        ["protocol=cure4rec", "dataset=ml100k_cure4rec", f"method={method}", "partitioner.n_shards=3", *SMALL], tmp_path
    )
    assert rec["status"] == "ok" and rec["n_valid"] == 0
    assert rec["aggregator"] == ("none" if method == "retrain" else "own")
    assert set(rec["shard_stop_reasons"]) == {"fixed_budget"} and set(rec["shard_epochs"]) == {2}
    for stage in ("before", "after", "retrain"):
        assert rec[f"{stage}.hr@20"] == rec[f"{stage}.recall@20"]
        assert 0 < rec[f"{stage}.ndcg@20"] < 1
    assert rec["before.n_eval_groups"] == rec["after.n_eval_groups"] == (1 if method == "retrain" else 3)
    assert rec["retrain.n_eval_groups"] == 1
