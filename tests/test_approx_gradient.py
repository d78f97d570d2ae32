"""The gradient methods (`finetune`, `neggrad_plus`, `kookmin`): NegGrad+ at alpha = 1 is
fine-tuning, every method is bit-deterministic on CPU, the budgets are what they say, Kookmin
re-initialises what it says, and each runs end to end through the runner with the completeness keys."""

import math

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.metrics.keys import KEYS
from unlearn.registry import METHODS

from .helpers import FAST, compose_run

SMALL = {"dim": 8, "epochs": 4, "patience": 2, "min_epochs": 1, "lr": 0.01, "batch_size": 64}


def spec(method, submodel="bpr", seed=0, **cfg):
    return {
        "method": {"name": method, **cfg},
        "submodel": {"name": submodel, **SMALL},
        "partitioner": {"name": "none", "n_shards": 1},
        "aggregator": {"name": "none"},
        "seed": seed,
    }


def run(data, method, submodel="bpr", users=(0, 1), seed=0, **cfg):
    m = METHODS.get(method)(spec(method, submodel, seed, **cfg))
    m.fit(TrainSet(data.n_users, data.n_items, data.train, data.valid))
    rows = np.flatnonzero(np.isin(data.train.users, users))
    m.unlearn(rows)
    return m, rows


def state(m):
    return {k: v.clone() for k, v in m.model.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("submodel", ["bpr", "lightgcn", "mse"])
def test_neggrad_at_alpha_one_is_finetune_over_as_many_retained_batches(synthetic, submodel):
    """3 passes over F (one batch each) pair with 3 retained batches; finetune's rows budget is
    set to need exactly 3 batches of 64."""
    n_f = int(np.isin(synthetic.train.users, (0, 1)).sum())
    assert n_f <= 64
    ng, _ = run(synthetic, "neggrad_plus", submodel, alpha=1.0, passes=3)
    ft, _ = run(synthetic, "finetune", submodel, rows_per_forget=(2 * 64 + 1) / n_f)
    assert ng.describe()["unlearn.steps.per_request"] == ft.describe()["unlearn.steps.per_request"] == [3]
    assert same(state(ng), state(ft))
    ascent, _ = run(synthetic, "neggrad_plus", submodel, alpha=0.9, passes=3)
    assert not same(state(ascent), state(ft))  # the F term acts below alpha = 1


@pytest.mark.parametrize(
    "method, cfg",
    [
        ("finetune", {}),
        ("finetune", {"budget": "epochs", "epochs": 2}),
        ("finetune", {"budget": "best_valid"}),
        ("neggrad_plus", {}),
        ("kookmin", {}),
        ("kookmin", {"reinit": "kaiming", "boost": "lr"}),
    ],
)
@pytest.mark.parametrize("submodel", ["bpr", "lightgcn", "wmf"])
def test_every_method_is_bit_deterministic(synthetic, method, cfg, submodel):
    a, _ = run(synthetic, method, submodel, **cfg)
    b, _ = run(synthetic, method, submodel, **cfg)
    assert same(state(a), state(b))
    users = torch.arange(synthetic.n_users)
    assert torch.equal(a.score(users), b.score(users))
    c, _ = run(synthetic, method, submodel, seed=1, **cfg)
    assert not same(state(a), state(c))


def test_finetune_budgets(synthetic):
    m, rows = run(synthetic, "finetune")
    d = m.describe()
    need = math.ceil(16 * len(rows))
    assert need <= d["unlearn.rows_touched.per_request"][0] < need + 64  # whole batches
    assert d["unlearn.steps.per_request"][0] == math.ceil(need / 64)
    e, _ = run(synthetic, "finetune", budget="epochs", epochs=2)
    n_r = len(synthetic.train) - len(rows)
    assert e.describe()["unlearn.rows_touched.per_request"] == [2 * n_r]
    assert e.describe()["unlearn.epochs.per_request"] == [2]
    v, _ = run(synthetic, "finetune", budget="best_valid")
    dv = v.describe()
    assert 1 <= dv["unlearn.best_epoch.per_request"][0] <= dv["unlearn.epochs.per_request"][0] <= SMALL["epochs"]


def test_kookmin_reinitialises_its_share_of_every_tensor(synthetic):
    m, rows = run(synthetic, "kookmin", rows_per_forget=1e-9)  # one fine-tuning step
    d = m.describe()
    expect = sum(max(1, int(p.numel() * 0.01)) for p in m.parameters().values())
    assert d["unlearn.reinitialised.per_request"] == [expect]
    assert d["unlearn.steps.per_request"] == [1]
    boosted, _ = run(synthetic, "kookmin", rows_per_forget=1e-9, boost_factor=1.0)
    assert not same(state(m), state(boosted))  # the lr boost (the default) acts
    grad, _ = run(synthetic, "kookmin", rows_per_forget=1e-9, boost="reinit_grad")
    assert not same(state(m), state(grad))  # ERASE's code: only the re-drawn entries' gradients boosted
    # g_R's rows: the retained rows of F's users first (ERASE's "clean forget" rows), then a sample
    own = np.flatnonzero(synthetic.train.users == 5)  # a user still retained
    m.data = m.data.without(own[::2])
    picked = m.retained_rows(own[::2], 40, torch.Generator().manual_seed(0))
    assert len(picked) == 40 and set(own[1::2]) <= set(picked.tolist()) and not set(own[::2]) & set(picked.tolist())


@pytest.mark.parametrize("method", ["finetune", "neggrad_plus", "kookmin"])
def test_a_run_through_the_runner_records_completeness(hydra_conf, tmp_path, method):
    rec = compose_run([f"method={method}", "deletion=users_stream", "deletion.rounds=2", *FAST], tmp_path)
    assert rec["status"] == "ok" and rec["method"] == method and rec["n_shards"] == 1
    for key in (
        "retrain_rank_gap@20",
        "retrain_rank_gap@20.deleted",
        "seed_floor@20",
        "mia_auc.after",
        "mia_auc.retrain",
        "forget_hit@20.after",
        "retrain_gap",
        "speedup",
        "after.ndcg@20",
    ):
        assert rec.get(key) is not None, key
    assert "exact_gap" not in rec  # no exact replica: the oracle is the reference
    assert len(rec["unlearn.steps.per_request"]) == 2 and all(s > 0 for s in rec["unlearn.steps.per_request"])
    assert rec["retrain_gap"] > 0
    undeclared = [k for k in rec if k.startswith("unlearn.") and KEYS.get(k) is None]
    assert not undeclared, undeclared


def test_the_runner_refuses_a_submodel_before_training(hydra_conf, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        compose_run(["method=finetune", "submodel=als", "dataset=synthetic", "runtime.threads=1"], tmp_path)
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "cannot use submodel=als. Valid submodel choices for it: bce, bpr" in err[0]
    assert not list(tmp_path.glob("runs/*"))
