"""Implicit ALS sub-model and the Unlearn-ALS method."""

from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn.data import TrainSet
from unlearn.data.deletion import draw
from unlearn.data.interactions import Interactions
from unlearn.errors import ConfigError
from unlearn.methods.unlearn_als import UnlearnALS, relative_gap
from unlearn.models.als import ImplicitALS
from unlearn.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
# well conditioned and in float64, so that ALS converges tightly in a few hundred cheap sweeps
TIGHT = {"name": "als", "dim": 6, "reg": 1.0, "alpha": 4.0, "dtype": "float64", "tol": 1e-12, "iterations": 2000}


def random_rows(n_users=30, n_items=25, density=0.25, seed=0, dense=False):
    rng = np.random.default_rng(seed)
    mask = np.ones((n_users, n_items), bool) if dense else rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    r = rng.integers(1, 6, len(u)).astype(np.float32)
    return Interactions(u, i, r)


def trainset(rows, n_users, n_items):
    return TrainSet(n_users, n_items, rows, rows.subset(slice(0, 0)))


def dense_problem(m):
    """(C, P) as dense numpy arrays from the model's observed cells."""
    u, i, raw = m.observed_cells()
    w = m.confidence_weights(torch.as_tensor(u), torch.as_tensor(i), torch.as_tensor(raw)).numpy()
    c = np.ones((m.n_users, m.n_items))
    p = np.zeros((m.n_users, m.n_items))
    c[u, i] += w
    p[u, i] = 1.0
    return c, p


def dense_objective(m):
    c, p = dense_problem(m)
    x, y = (t.double().numpy() for t in m.embeddings())
    return float((c * (p - x @ y.T) ** 2).sum() + m.cfg["reg"] * ((x**2).sum() + (y**2).sum()))


def model(n_users, n_items, **cfg):
    base = {"dim": 5, "reg": 0.1, "alpha": 2.0, "dtype": "float64", "binarize": False, "iterations": 30, "tol": 0.0}
    return ImplicitALS(n_users, n_items, {**base, **cfg})


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
@pytest.mark.parametrize("confidence", ["linear", "bm25"])
def test_objective_is_exact_and_decreases_monotonically(solver, confidence):
    rows = random_rows()
    m = model(30, 25, solver=solver, confidence=confidence)
    info = m.fit(trainset(rows, 30, 25), seed=0)
    assert info.epochs == 30 and info.stop_reason == "sweep_cap"
    h = np.array(m.history)
    assert np.all(np.diff(h) <= 1e-10 * h[:-1]), h
    assert m.objective() == pytest.approx(dense_objective(m), rel=1e-12)


@pytest.mark.parametrize("confidence", ["linear", "bm25"])
def test_solves_equal_the_dense_normal_equations(confidence):
    rows = random_rows(seed=1)
    m = model(30, 25, confidence=confidence, iterations=3)
    m.fit(trainset(rows, 30, 25), seed=3)
    c, p = dense_problem(m)
    reg, d = m.cfg["reg"], m.dim
    m.partial_fit_users([2, 7, 11])
    y = m.item_factors.double().numpy()
    for u in (2, 7, 11):
        a = y.T @ (c[u][:, None] * y) + reg * np.eye(d)
        np.testing.assert_allclose(m.user_factors[u].numpy(), np.linalg.solve(a, y.T @ (c[u] * p[u])), atol=1e-12)
    m.partial_fit_items([0, 5])
    x = m.user_factors.double().numpy()
    for i in (0, 5):
        a = x.T @ (c[:, i][:, None] * x) + reg * np.eye(d)
        np.testing.assert_allclose(m.item_factors[i].numpy(), np.linalg.solve(a, x.T @ (c[:, i] * p[:, i])), atol=1e-12)


def test_cg_with_dim_steps_is_the_exact_solve_and_float32_agrees():
    rows = random_rows(seed=2)
    exact = model(30, 25, iterations=4)
    exact.fit(trainset(rows, 30, 25), seed=0)
    cg = model(30, 25, iterations=4, solver="cg", cg_steps=exact.dim)
    cg.fit(trainset(rows, 30, 25), seed=0)
    torch.testing.assert_close(cg.user_factors, exact.user_factors, rtol=1e-8, atol=1e-9)
    f32 = model(30, 25, iterations=4, dtype="float32", chunk_mb=0.001)  # many tiny buckets
    f32.fit(trainset(rows, 30, 25), seed=0)
    torch.testing.assert_close(f32.user_factors.double(), exact.user_factors, rtol=1e-3, atol=1e-4)


def test_fit_is_deterministic_and_users_without_cells_get_zero():
    rows = random_rows(seed=4)
    rows = rows.subset(np.flatnonzero(rows.users != 3))  # user 3 observes nothing
    a, b = model(30, 25), model(30, 25)
    a.fit(trainset(rows, 30, 25), seed=5)
    b.fit(trainset(rows, 30, 25), seed=5)
    assert torch.equal(a.user_factors, b.user_factors) and torch.equal(a.item_factors, b.item_factors)
    assert torch.count_nonzero(a.user_factors[3]) == 0


@pytest.mark.parametrize("confidence", ["linear", "bm25"])
def test_unobserving_cells_equals_never_observing_them(confidence):
    rows = random_rows(seed=6)
    drop = np.arange(0, len(rows), 7)
    full = model(30, 25, confidence=confidence, iterations=5)
    full.fit(trainset(rows, 30, 25), seed=0)
    never = model(30, 25, confidence=confidence)
    kept = rows.without(drop)
    never.observe(kept.users, kept.items, kept.ratings)
    never.set_factors(*full.embeddings())
    assert full.unobserve(rows.users[drop], rows.items[drop]) == len(drop)
    assert full.objective() == pytest.approx(never.objective(), rel=1e-13)
    full.sweep()
    never.sweep()
    torch.testing.assert_close(full.user_factors, never.user_factors, rtol=0, atol=1e-12)
    torch.testing.assert_close(full.item_factors, never.item_factors, rtol=0, atol=1e-12)


def cell_set(m):
    u, i, raw = m.observed_cells()
    return {(int(a), int(b)): float(r) for a, b, r in zip(u, i, raw)}


def als_spec(submodel=None, **axes):
    s = {
        "method": {"name": "unlearn_als", "tol": 1e-12, "max_sweeps": 5},
        "submodel": submodel or dict(TIGHT),
        "partitioner": {"name": "none", "n_shards": 1},
        "aggregator": {"name": "none"},
        "seed": 0,
    }
    s.update(axes)
    return s


@pytest.mark.parametrize("dense", [True, False])
def test_unlearning_deletes_exactly_the_cells_asked_for(dense):
    rows = random_rows(12, 9, seed=7, dense=dense)
    # a duplicate row for one cell: deleting one of the two rows keeps the cell (value from the other)
    dup = 5
    rows = Interactions.concat([rows, Interactions(rows.users[[dup]], rows.items[[dup]], np.array([2.0]))])
    m = UnlearnALS(als_spec({**TIGHT, "binarize": False, "iterations": 3}))
    m.fit(TrainSet(12, 9, rows, rows.subset(slice(0, 0))))
    forget = np.array([0, 3, dup, len(rows) - 5])
    report = m.unlearn(forget)
    expected = {}
    for k in np.setdiff1d(np.arange(len(rows)), forget):
        key = (int(rows.users[k]), int(rows.items[k]))
        expected[key] = expected.get(key, 0.0) + float(rows.ratings[k])
    assert cell_set(m.model) == expected
    assert (int(rows.users[dup]), int(rows.items[dup])) in expected  # still observed, value 2.0
    assert report.extra["cells_removed"] == 3
    # the item-major copy holds the same cells
    side = m.model._by_item
    items = torch.repeat_interleave(torch.arange(9), side.counts).numpy()
    assert {(int(u), int(i)) for u, i in zip(side.col.numpy(), items)} == set(expected)


def test_unlearning_converges_to_the_retrain_optimum(synthetic):
    d = synthetic
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 6}, 0)
    spec = als_spec(method={"name": "unlearn_als", "tol": 1e-12, "max_sweeps": 2000})
    m = UnlearnALS(spec)
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    oracle = METHODS.get("retrain")({**spec, "method": {"name": "retrain"}})
    oracle.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid).without(req.rows))
    m.set_reference(oracle.score)
    report = m.unlearn(req.rows)
    rec = m.describe()
    gaps = rec["unlearn.retrain_gap_trace"]
    assert len(gaps) == report.extra["sweeps"] + 1 == rec["unlearn.round_sweeps"][0] + 1
    assert gaps[0] > 1e-2  # M0 is far from the oracle
    assert gaps[-1] < 1e-3  # M1 reached it
    assert relative_gap(m.score, oracle.score, d.n_users, 64, torch.device("cpu")) == pytest.approx(gaps[-1])
    trace = np.array(rec["unlearn.objective_trace"])
    assert trace[0] == rec["unlearn.objective_before"] and trace[-1] == rec["unlearn.objective_after"]
    assert np.all(np.diff(trace) <= 1e-10 * trace[:-1])
    assert rec["unlearn.objective_after"] == pytest.approx(oracle.shards[0].objective(), rel=1e-9)
    assert rec["unlearn.converged"] and not m.builds_exact_replica


def test_warm_start_never_reinitialises(synthetic):
    d = synthetic
    m = UnlearnALS(als_spec(method={"name": "unlearn_als", "tol": 0.0, "max_sweeps": 1}))
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    # by hand: the trained factors, the cell made unobserved, one sweep
    by_hand = ImplicitALS(d.n_users, d.n_items, m.spec["submodel"])
    by_hand.observe(d.train.users, d.train.items, d.train.ratings)
    by_hand.set_factors(*m.model.embeddings())
    by_hand.unobserve(d.train.users[[0]], d.train.items[[0]])
    by_hand.sweep()
    m.unlearn(np.array([0]))
    assert torch.equal(m.model.user_factors, by_hand.user_factors)
    assert torch.equal(m.model.item_factors, by_hand.item_factors)
    assert m.describe()["unlearn.round_sweeps"] == [1]


@pytest.mark.parametrize(
    "axis, value, valid",
    [
        ("submodel", {"name": "bpr"}, "als"),
        ("aggregator", {"name": "attention"}, "none"),
        ("partitioner", {"name": "random", "n_shards": 2}, "none"),
    ],
)
def test_unlearn_als_refuses_other_axes(axis, value, valid):
    with pytest.raises(ConfigError, match=f"Valid {axis} choices for it: {valid}"):
        METHODS.get("unlearn_als")(als_spec(**{axis: value}))


def test_bad_submodel_options_are_config_errors():
    for bad in ({"solver": "lu"}, {"confidence": "log"}, {"reg": 0.0}, {"dtype": "half"}):
        with pytest.raises(ConfigError):
            ImplicitALS(5, 5, bad)


def test_state_dict_round_trip_and_unlearn_after_loading(synthetic):
    d = synthetic
    data = TrainSet(d.n_users, d.n_items, d.train, d.valid)
    m = UnlearnALS(als_spec({**TIGHT, "iterations": 5}))
    m.fit(data)
    copy = UnlearnALS(m.spec)
    copy.load_state_dict(m.state_dict(), data)
    users = torch.arange(d.n_users)
    assert torch.equal(copy.score(users), m.score(users))
    assert copy.model.objective() == m.model.objective()
    rows = np.arange(10)
    m.unlearn(rows)
    copy.unlearn(rows)
    assert torch.equal(copy.score(users), m.score(users))


def test_sisa_with_als_shards_is_exact(synthetic):
    d = synthetic
    sub = {**TIGHT, "iterations": 4, "tol": 0.0}
    s = {
        "method": {"name": "sisa"},
        "submodel": sub,
        "partitioner": {"name": "random", "n_shards": 3, "unit": "user"},
        "aggregator": {"name": "mean"},
        "seed": 0,
    }
    m = METHODS.get("sisa")(s)
    m.fit(TrainSet(d.n_users, d.n_items, d.train, d.valid))
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 2}, 0)
    m.unlearn(req.rows)
    rep = m.exact_replica(TrainSet(d.n_users, d.n_items, d.train, d.valid).without(req.rows))
    users = torch.arange(d.n_users)
    assert torch.equal(m.score(users), rep.score(users))


def test_a_singular_system_falls_back_to_the_pseudo_inverse_and_says_so(caplog):
    """With a vanishing L2 term and more factors than items the normal equations are singular: Cholesky
    fails, the exact float64 pseudo-inverse solves them, and a warning names the fallback."""
    rows = random_rows(n_users=12, n_items=4, density=0.9, seed=5)
    m = model(12, 4, dim=6, reg=1e-30, dtype="float32", iterations=2)
    with caplog.at_level("WARNING", logger="unlearn.models.als"):
        m.fit(trainset(rows, 12, 4), seed=0)
    assert any("pseudo-inverse" in r.getMessage() for r in caplog.records)
    assert torch.isfinite(m.user_factors).all() and torch.isfinite(m.item_factors).all()
