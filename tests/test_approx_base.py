"""The approximate family's base (`unlearn.methods.approx.base`): M0 is retrain's fit, an empty
request is a no-op, LightGCN scores what its parameters propagate to after unlearning, the
helpers the influence methods build on, and refusals before training."""

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.errors import ConfigError
from unlearn.methods.approx.base import ApproximateMethod
from unlearn.metrics.keys import KEYS
from unlearn.models.lightgcn import LightGCN
from unlearn.registry import METHODS

SMALL = {"dim": 8, "epochs": 4, "patience": 2, "min_epochs": 1, "lr": 0.01, "batch_size": 128}


def spec(method="finetune", submodel="bpr", seed=0, **cfg):
    return {
        "method": {"name": method, **cfg},
        "submodel": {"name": submodel, **SMALL},
        "partitioner": {"name": "none", "n_shards": 1},
        "aggregator": {"name": "none"},
        "seed": seed,
    }


def full(data):
    return TrainSet(data.n_users, data.n_items, data.train, data.valid)


def forget_rows(data, users=(0, 1)):
    return np.flatnonzero(np.isin(data.train.users, users))


def params(method):
    return {n: p.detach().clone() for n, p in method.model.state_dict().items()}


class _Fixed(ApproximateMethod):
    """Adds a constant to one entry, reporting what it is told."""

    registered_name = "fixed"
    defaults = {}

    def __init__(self, *a, report=None, **kw):
        super().__init__(*a, **kw)
        self.report = report or {}

    def update(self, rows):
        with torch.no_grad():
            self.model.user_emb[0, 0] += 1.0
        return dict(self.report)


@pytest.mark.parametrize("submodel", ["bpr", "lightgcn", "wmf"])
def test_m0_is_retrains_fit_bit_for_bit(synthetic, submodel):
    data = full(synthetic)
    approx = METHODS.get("finetune")(spec(submodel=submodel, seed=3))
    approx.fit(data)
    retrain = METHODS.get("retrain")({**spec(submodel=submodel, seed=3), "method": {"name": "retrain"}})
    retrain.fit(data)
    ours, theirs = approx.model.state_dict(), retrain.shards[0].state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    other = METHODS.get("finetune")(spec(submodel=submodel, seed=4))
    other.fit(data)
    assert not torch.equal(other.model.user_emb, approx.model.user_emb)  # the comparison can fail


@pytest.mark.parametrize("method", ["finetune", "neggrad_plus", "kookmin"])
def test_an_empty_request_is_a_no_op(synthetic, method):
    m = METHODS.get(method)(spec(method))
    m.fit(full(synthetic))
    before = params(m)
    cost = m.unlearn(np.array([], dtype=np.int64))
    assert all(torch.equal(before[k], v) for k, v in params(m).items())
    assert cost.span.wall == 0 and cost.extra == {}
    m.unlearn(forget_rows(synthetic))  # a real request after it changes the parameters
    assert not all(torch.equal(before[k], v) for k, v in params(m).items())
    d = m.describe()
    assert d["unlearn.steps.per_request"][0] == 0 and d["unlearn.steps.per_request"][1] > 0
    assert d["unlearn.step_norm.per_request"][0] == 0.0 and d["unlearn.step_norm.per_request"][1] > 0


def test_lightgcn_scores_its_parameters_propagated_on_the_retained_graph(synthetic):
    m = METHODS.get("finetune")(spec(submodel="lightgcn"))
    data = full(synthetic)
    m.fit(data)
    users = torch.arange(synthetic.n_users)
    m0 = m.score(users).clone()
    rows = forget_rows(synthetic)
    m.unlearn(rows)
    fresh = LightGCN(synthetic.n_users, synthetic.n_items, {"name": "lightgcn", **SMALL})
    fresh.load_state_dict(m.model.state_dict())
    fresh.prepare(data.without(rows))
    with torch.no_grad():
        pu, pi = fresh.propagate()
    torch.testing.assert_close(m.score(users), pu @ pi.T, rtol=0, atol=1e-6)
    assert (m.score(users[:2]) - m0[:2]).abs().max() > 1e-3  # not M0's buffers


def test_helpers_influence_methods_build_on(synthetic):
    m = _Fixed(spec("fixed"))
    m.fit(full(synthetic))
    rows = forget_rows(synthetic)
    m.unlearn(rows)
    m.model.prepare(m.data)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    sample = m.retained_sample(50, gen())
    assert len(sample) == 50 and np.all(np.diff(sample) > 0) and not np.isin(sample, rows).any()
    assert np.array_equal(sample, m.retained_sample(50, gen()))
    assert np.array_equal(m.retained_sample(10**6, gen()), m.data.row_index)
    (batch,) = m.batches_of(sample, gen(), batch_size=len(sample))
    users, pos, neg = batch
    t = synthetic.train
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(zip(t.users[sample].tolist(), t.items[sample].tolist()))
    retained = set(zip(m.data.train.users.tolist(), m.data.train.items.tolist()))
    assert not any((u, j) in retained for u, j in zip(users.tolist(), neg.tolist()))
    # the loss as a function of the parameters: the module's own loss at its own parameters
    fn = m.loss_fn(batch)
    own = m.parameters()
    assert torch.equal(fn({}), m.model.loss(batch))
    shifted = {"user_emb": own["user_emb"] * 2}
    assert float(fn(shifted)) != float(fn({}))
    p = {k: v.detach().clone().requires_grad_(True) for k, v in own.items()}
    (g,) = torch.autograd.grad(fn(p), [p["user_emb"]], create_graph=True)
    assert g.requires_grad  # differentiable twice
    flat = m.flatten(own)
    assert flat.numel() == sum(v.numel() for v in own.values())
    back = m.unflatten(flat, own)
    assert all(torch.equal(back[k], own[k]) for k in own)
    a, b = m.init_draw(gen()), m.init_draw(gen())
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["user_emb"], own["user_emb"])


def test_reports_become_record_keys_and_undeclared_ones_are_refused(synthetic):
    m = _Fixed(spec("fixed"), report={"hvps": 3, "residual": 1e-7, "converged": True})
    m.fit(full(synthetic))
    c1 = m.unlearn(forget_rows(synthetic, [0]))
    c2 = m.unlearn(forget_rows(synthetic, [1]))
    rec = type(c1).record([c1, c2])
    assert rec["unlearn.hvps"] == 6 and rec["unlearn.params_touched"] == 2
    assert "unlearn.prepare_s" in rec and "unlearn.refresh_cpu_s" in rec
    d = m.describe()
    assert d["unlearn.residual.per_request"] == [1e-7, 1e-7] and d["unlearn.converged.per_request"] == [True, True]
    assert d["unlearn.step_norm.per_request"] == [1.0, 1.0]
    assert all(KEYS.get(k) is not None for k in [*rec, *d] if k.startswith("unlearn."))
    bad = _Fixed(spec("fixed"), report={"no_such_health_value": 1.0})
    bad.fit(full(synthetic))
    with pytest.raises(ValueError, match="no_such_health_value"):
        bad.unlearn(forget_rows(synthetic))


@pytest.mark.parametrize("method", ["finetune", "neggrad_plus", "kookmin"])
def test_other_submodels_and_axes_are_refused_before_training(method):
    with pytest.raises(ConfigError, match=r"cannot use submodel=als\. Valid submodel choices for it: .*bpr.*lightgcn"):
        METHODS.get(method)(spec(method, submodel="als"))
    with pytest.raises(ConfigError, match="cannot use partitioner=random"):
        METHODS.get(method)({**spec(method), "partitioner": {"name": "random", "n_shards": 2}})
    with pytest.raises(ConfigError, match="has no setting nosuch"):
        METHODS.get(method)(spec(method, nosuch=1))
    accepted = METHODS.get(method).allowed["submodel"]
    assert "twotower" in accepted and "als" not in accepted


def test_m0_is_fitted_once_and_shared_through_the_cache(synthetic, tmp_path):
    """A second approximate method on the same rows, sub-model and seed loads M0 bit-identical;
    another seed trains its own."""
    data = full(synthetic)
    first = METHODS.get("finetune")(spec("finetune"), cache_dir=str(tmp_path))
    a = first.fit(data)
    second = METHODS.get("neggrad_plus")(spec("neggrad_plus"), cache_dir=str(tmp_path))
    b = second.fit(data)
    assert a.extra["m0_cached"] == 0 and b.extra["m0_cached"] == 1
    assert b.seconds == a.seconds and b.epochs == a.epochs  # the fit that trained it
    assert all(torch.equal(params(first)[n], t) for n, t in params(second).items())
    other = METHODS.get("finetune")(spec("finetune", seed=1), cache_dir=str(tmp_path))
    assert other.fit(data).extra["m0_cached"] == 0
    rows = forget_rows(synthetic)
    first.unlearn(rows), second.unlearn(rows)  # a loaded M0 unlearns like a fitted one
    assert second.model.score(torch.arange(5)).shape == (5, data.n_items)
