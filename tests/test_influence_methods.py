"""`scif`, `scif_ui` and `ifru` as methods: the ALS anchor through the method, LightGCN scoring
its unlearned parameters, `deleted_users: reinit` holding the oracle's row, no-ops,
determinism, refusals before training, and one short run of each through the real runner."""

import copy

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.errors import ConfigError
from unlearn.metrics.keys import KEYS
from unlearn.models.lightgcn import normalized_adjacency
from unlearn.registry import METHODS

from .helpers import FAST, compose_run

SMALL = {"dim": 8, "epochs": 4, "patience": 2, "min_epochs": 1, "lr": 0.01, "batch_size": 128}


def spec(method="scif", submodel="bpr", seed=0, sub=None, **cfg):
    return {
        "method": {"name": method, **cfg},
        "submodel": {"name": submodel, **(SMALL if sub is None else sub)},
        "partitioner": {"name": "none"},
        "aggregator": {"name": "none"},
        "seed": seed,
    }


def full(data):
    return TrainSet(data.n_users, data.n_items, data.train, data.valid)


def fitted(data, *args, **kw):
    m = METHODS.get(args[0] if args else kw.get("method", "scif"))(spec(*args, **kw))
    m.fit(full(data))
    return m


def tables(m):
    return {n: p.detach().clone() for n, p in m.model.named_parameters()}


def test_scif_on_als_is_the_per_user_resolve_unlearn_als_makes(synthetic):
    """newton_retained, damping 0: F's cells unobserved, then each user's exact re-solve with the
    items fixed (ImplicitALS.partial_fit_users, Unlearn-ALS's primitive), to 1e-10 in float64."""
    als = {"dim": 6, "dtype": "float64", "reg": 0.1, "iterations": 4}
    m = fitted(synthetic, "scif", "als", sub=als, form="newton_retained", damping=0.0)
    ref = copy.deepcopy(m.model)
    t = synthetic.train
    rows = np.concatenate([np.flatnonzero(t.users == u)[:3] for u in (2, 9, 30)])
    items = m.model.item_factors.detach().clone()
    m.unlearn(rows)
    ref.unobserve(t.users[rows], t.items[rows])
    ref.partial_fit_users(np.unique(t.users[rows]))
    assert torch.equal(m.model.item_factors, items)
    assert float((m.model.user_factors - ref.user_factors).abs().max()) < 1e-10
    assert m.describe()["unlearn.converged.per_request"] == [True]


def test_an_empty_request_is_a_no_op_with_no_iterations(synthetic):
    m = fitted(synthetic, "scif_ui")
    before = tables(m)
    cost = m.unlearn(np.zeros(0, dtype=np.int64))
    assert all(torch.equal(before[k], v) for k, v in tables(m).items())
    assert cost.extra.get("solver_iters", 0) == 0 and cost.extra.get("hvps", 0) == 0


def test_scif_moves_only_the_requesting_users_rows(synthetic):
    m = fitted(synthetic, "scif")
    before = tables(m)
    rows = np.flatnonzero(np.isin(synthetic.train.users, [4, 11]))
    m.unlearn(rows)
    after = tables(m)
    changed = (after["user_emb"] != before["user_emb"]).any(1).nonzero().flatten().tolist()
    assert changed == [4, 11] and torch.equal(after["item_emb"], before["item_emb"])


@pytest.mark.parametrize("method", ["scif", "ifru"])
def test_lightgcn_scores_after_unlearning_are_a_fresh_propagation(synthetic, method):
    m = fitted(synthetic, method, "lightgcn")
    users = torch.arange(synthetic.n_users)
    m0 = m.score(users).clone()
    rows = np.flatnonzero(np.isin(synthetic.train.users, [5]))
    m.unlearn(rows)
    kept = synthetic.train.subset(np.setdiff1d(np.arange(len(synthetic.train)), rows))
    adj = normalized_adjacency(kept.users, kept.items, synthetic.n_users, synthetic.n_items, torch.device("cpu"))
    x = torch.cat([m.model.user_emb.detach(), m.model.item_emb.detach()])
    total, layer = x, x
    for _ in range(int(m.model.cfg["n_layers"])):
        layer = torch.sparse.mm(adj, layer)
        total = total + layer
    out = total / (int(m.model.cfg["n_layers"]) + 1)
    fresh = out[: synthetic.n_users] @ out[synthetic.n_users :].T
    assert torch.allclose(m.score(users), fresh, atol=1e-5)
    assert not torch.allclose(m.score(users)[5], m0[5], atol=1e-4)


@pytest.mark.parametrize("submodel", ["bpr", "wmf"])
def test_reinit_gives_a_user_without_rows_the_row_the_oracle_holds(synthetic, submodel):
    m = fitted(synthetic, "scif", submodel, deleted_users="reinit")
    rows = np.flatnonzero(np.isin(synthetic.train.users, [7]))
    m.unlearn(rows)
    oracle = METHODS.get("retrain")({**spec(submodel=submodel), "method": {"name": "retrain"}})
    oracle.fit(full(synthetic).without(rows))
    assert torch.equal(m.model.user_emb[7], oracle.shards[0].user_emb[7])
    assert m.describe()["unlearn.reinit_users.per_request"] == [1]


def test_unlearning_is_bit_deterministic_on_cpu(synthetic):
    rows = np.flatnonzero(np.isin(synthetic.train.users, [3, 8]))
    runs = []
    for _ in range(2):
        m = fitted(synthetic, "scif_ui", damping_probes=2)
        m.unlearn(rows)
        runs.append((tables(m), {k: v for k, v in m.describe().items() if not k.endswith("_s")}))
    (a, da), (b, db) = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert da == db


def test_a_submodel_it_cannot_unlearn_is_refused_before_training():
    with pytest.raises(ConfigError, match="bpr, bce, mse, wmf, lightgcn, als"):
        METHODS.get("scif")(spec(submodel="twotower"))


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"form": "gradient"}, "method.form"),
        ({"deleted_users": "drop"}, "method.deleted_users"),
        ({"block": "items"}, "method.block"),
        ({"solver": "direct"}, "block-diagonal"),
        ({"damping": -1.0}, "method.damping"),
    ],
)
def test_bad_settings_are_refused_with_one_line(cfg, match):
    with pytest.raises(ConfigError, match=match) as err:
        METHODS.get("scif_ui")(spec("scif_ui", **cfg))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method,submodel", [("scif", "bpr"), ("scif_ui", "bce"), ("ifru", "lightgcn")])
def test_a_short_stream_through_the_runner_records_solver_health(hydra_conf, tmp_path, method, submodel):
    rec = compose_run(
        [f"method={method}", f"submodel={submodel}", "deletion=users_stream", "deletion.rounds=2", *FAST], tmp_path
    )
    assert rec["status"] == "ok" and rec["method"] == method and rec["n_shards"] == 1
    assert len(rec["unlearn_s.per_request"]) == 2 and rec["unlearn.hvps"] > 0
    for key in (
        "hvps",
        "solver_iters",
        "residual",
        "converged",
        "negative_curvature",
        "damping",
        "step_norm",
        "rows_touched",
        "params_touched",
    ):
        assert len(rec[f"unlearn.{key}.per_request"]) == 2, key
    assert "exact_gap" not in rec and "retrain_rank_gap@20.deleted" in rec and "mia_auc.after" in rec
    undeclared = [k for k in rec if k.startswith("unlearn.") and KEYS.get(k) is None]
    assert not undeclared, undeclared
