"""The influence engine's maths: Hessian-vector products against finite differences, the solvers
on known systems, the two forms against their closed forms, and the influence step against the
derivative of retraining. Tiny sizes, float64."""

import numpy as np
import pytest
import torch

import unlearn.models  # noqa: F401  (registers the sub-models)
from unlearn.data.interactions import Interactions
from unlearn.influence import Block, HessianOperator, InfluenceConfig, InfluenceStep, Objective, adam, cg, lissa
from unlearn.influence.objective import draw_negatives, kind_of, make_rows, n_negatives, substituted, tables
from unlearn.influence.solvers import direct, escalate
from unlearn.registry import SUBMODELS

N_USERS, N_ITEMS, DIM = 12, 10, 3


def interactions(n_users=N_USERS, n_items=N_ITEMS, n=60, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, n_users, n) * n_items + rng.integers(0, n_items, n))
    return Interactions(keys // n_items, keys % n_items, np.ones(len(keys)))


def submodel(name, n_users=N_USERS, n_items=N_ITEMS, dim=DIM, seed=0, **cfg):
    base = {"dim": dim, "init_std": 0.5}
    if name == "als":
        base["dtype"] = "float64"
    if name == "wmf":
        base.update(batch_size=5, dropout=0.0)
    m = SUBMODELS.get(name)(n_users, n_items, {**base, **cfg})
    gen = torch.Generator()
    gen.manual_seed(seed)
    m.reset_parameters(gen)
    if name != "als":
        m.double()
    return m.eval()


def spd(n, cond, seed=0):
    """A random SPD matrix with eigenvalues evenly spaced from 1 to `cond`, and a right-hand side."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eig = torch.linspace(1.0, cond, n, dtype=torch.float64)
    return (q * eig) @ q.T, torch.randn(n, generator=gen, dtype=torch.float64)


class Matrix:
    """A dense matrix as an operator, counting products."""

    def __init__(self, a):
        self.a, self.hvps = a, 0

    def __call__(self, v):
        self.hvps += 1
        return self.a @ v


class Damped(Matrix):
    """(A + damping I) as an operator whose damping the solver sets, as on HessianOperator."""

    damping = 0.0

    def __call__(self, v):
        return super().__call__(v) + self.damping * v


# -- Hessian-vector products ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bpr", "bce", "mse", "wmf", "lightgcn", "als"])
def test_hvp_equals_central_differences_of_the_gradient(name):
    """For LightGCN the objective is the propagated loss (the graph of the rows)."""
    train = interactions()
    m = submodel(name)
    kind = kind_of(m)
    gen = torch.Generator()
    gen.manual_seed(1)
    rows = make_rows(train, np.arange(len(train)), "cpu")
    rows = draw_negatives(rows, rows, n_negatives(m, kind, train.ratings), N_ITEMS, gen)
    if kind == "mse":
        rows = rows.with_targets(1.0, 1.0)
    objective = Objective(m, kind, rows)
    u, i = (t.detach() for t in tables(m))
    block = Block(torch.arange(N_USERS), torch.arange(N_ITEMS), DIM)

    def f(x):
        return objective(*block.place(x, u, i))

    def grad(x):
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(f(x), x)[0]

    x0 = block.gather(u, i)
    v = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    hv = HessianOperator(f, x0).hvp(v)
    h = 1e-5
    fd = (grad(x0 + h * v) - grad(x0 - h * v)) / (2 * h)
    assert hv.abs().max() > 1e-3  # not trivially zero
    assert float((hv - fd).norm() / fd.norm()) < 1e-6


# -- solvers ---------------------------------------------------------------------------------------
def test_cg_reaches_its_tolerance_on_spd_in_at_most_n_iterations():
    a, v = spd(64, 1e4)
    x, rep = cg(Matrix(a), v, tol=1e-6, max_iter=1000)
    assert rep.converged and rep.iterations <= 64 and not rep.negative_curvature
    assert rep.residual <= 1e-6
    assert torch.allclose(x, torch.linalg.solve(a, v), rtol=1e-5, atol=1e-8)


def test_cg_meets_its_tolerance_in_the_true_residual_not_only_the_recurrence():
    a, v = spd(64, 1e10)
    x, rep = cg(Matrix(a), v, tol=1e-8, max_iter=1000)
    assert rep.converged and float((a @ x - v).norm() / v.norm()) <= 1e-8


def test_cg_reports_an_indefinite_system():
    a, v = spd(20, 10)
    a = a - 3.0 * torch.eye(20, dtype=torch.float64)  # eigenvalues from -2 to 7
    _, rep = cg(Matrix(a), v, tol=1e-10, max_iter=200)
    assert rep.negative_curvature and not rep.converged
    assert rep.residual <= 1.0  # what it returns is never further from a solution than no step


def test_cg_stops_at_max_iter_unconverged():
    a, v = spd(64, 1e6)
    _, rep = cg(Matrix(a), v, tol=1e-12, max_iter=5)
    assert rep.iterations == 5 and not rep.converged and rep.residual > 1e-12


def test_lissa_matches_cg_when_its_scale_exceeds_the_top_eigenvalue():
    a, v = spd(16, 10)
    top = float(torch.linalg.eigvalsh(a)[-1])
    x_cg, _ = cg(Matrix(a), v, tol=1e-12, max_iter=100)
    x, rep = lissa(Matrix(a), v, tol=1e-10, max_iter=5000, scale=1.1 * top)
    assert rep.converged and not rep.diverged
    assert torch.allclose(x, x_cg, rtol=1e-7, atol=1e-9)


def test_lissa_reports_divergence_when_its_scale_is_below_half_the_top_eigenvalue():
    a, v = spd(16, 10)
    top = float(torch.linalg.eigvalsh(a)[-1])
    x, rep = lissa(Matrix(a), v, tol=1e-10, max_iter=5000, scale=0.25 * top)
    assert rep.diverged and not rep.converged and rep.iterations < 5000
    assert rep.residual <= 1.0 and bool(torch.isfinite(x).all())


def test_adam_on_the_quadratic_reaches_the_cg_answer():
    a, v = spd(8, 5)
    x_cg, _ = cg(Matrix(a), v, tol=1e-12, max_iter=100)
    x, rep = adam(Matrix(a), v, tol=1e-6, max_iter=20000, lr=1e-2)
    assert rep.converged and rep.residual <= 1e-6
    assert torch.allclose(x, x_cg, atol=1e-5)


def test_direct_solves_each_block_and_reports_an_indefinite_one():
    a1, v1 = spd(3, 10, seed=1)
    a2, v2 = spd(3, 10, seed=2)
    x, rep = direct(torch.stack([a1, a2]), torch.stack([v1, v2]))
    assert torch.allclose(x[1], torch.linalg.solve(a2, v2)) and not rep.negative_curvature and rep.residual < 1e-12
    _, rep = direct(torch.stack([a1, a2 - 20 * torch.eye(3, dtype=torch.float64)]), torch.stack([v1, v2]))
    assert rep.negative_curvature and not rep.converged


@pytest.mark.parametrize("solver", ["cg", "lissa"])
def test_escalation_raises_the_damping_of_an_indefinite_system_until_it_solves(solver):
    a, v = spd(20, 10)
    a = a - 3.0 * torch.eye(20, dtype=torch.float64)  # eigenvalues from -2 to 7: damping 1 is not enough
    options = {"scale": 20.0} if solver == "lissa" else {}
    x, rep = escalate(solver, Damped(a), v, 1.0, 5000, growth=10.0, retries=3, tol=1e-8, **options)
    assert (rep.negative_curvature or solver == "lissa") and rep.converged and not rep.diverged
    assert rep.damping_retries == 1 and rep.damping == 10.0 and rep.iterations <= 5000
    assert torch.allclose(x, torch.linalg.solve(a + 10.0 * torch.eye(20, dtype=torch.float64), v), atol=1e-6)
    _, kept = escalate(solver, Damped(a), v, 1.0, 5000, retries=0, tol=1e-8, **options)
    assert kept.damping_retries == 0 and kept.damping == 1.0 and not kept.converged
    _, exact = escalate(solver, Damped(a), v, 0.0, 5000, retries=3, tol=1e-8, **options)
    assert exact.damping_retries == 0 and exact.damping == 0.0  # an exact solve is never damped


def test_escalation_shares_one_iteration_budget():
    a, v = spd(40, 1e4)
    a = a - 2.0 * torch.eye(40, dtype=torch.float64)
    m = Damped(a)
    _, rep = escalate("cg", m, v, 0.5, 7, growth=2.0, retries=10, tol=1e-14)
    assert rep.iterations <= 7 and not rep.converged


def test_direct_raises_the_damping_of_the_indefinite_blocks_only():
    a1, v1 = spd(3, 10, seed=1)
    a2, v2 = spd(3, 10, seed=2)
    bad = a2 - 20 * torch.eye(3, dtype=torch.float64)  # eigenvalues from -19 to -10
    x, rep = direct(torch.stack([a1, bad]), torch.stack([v1, v2]), 1.0, growth=10.0, retries=3)
    eye = torch.eye(3, dtype=torch.float64)
    assert rep.negative_curvature and rep.converged and rep.damping_retries == 2 and rep.damping == 100.0
    assert torch.allclose(x[0], torch.linalg.solve(a1 + eye, v1))
    assert torch.allclose(x[1], torch.linalg.solve(bad + 100.0 * eye, v2))


def test_an_empty_right_hand_side_costs_nothing():
    for solve in (cg, lissa, adam):
        m = Matrix(torch.eye(4, dtype=torch.float64))
        x, rep = solve(m, torch.zeros(4, dtype=torch.float64))
        assert m.hvps == 0 and rep.iterations == 0 and bool((x == 0).all())


# -- the forms against their closed forms ---------------------------------------------------------
def fitted_als(train, n_users, n_items, dim=3, confidence="linear"):
    m = SUBMODELS.get("als")(
        n_users,
        n_items,
        {
            "dim": dim,
            "dtype": "float64",
            "reg": 0.1,
            "alpha": 2.0,
            "iterations": 3,
            "tol": 0.0,
            "confidence": confidence,
        },
    )
    from unlearn.data.interactions import TrainSet

    m.fit(TrainSet(n_users, n_items, train, Interactions(train.users[:0], train.items[:0], np.ones(0))), 7)
    return m.requires_grad_(False)


def forget_some(train, users=(1, 4), k=2):
    return np.concatenate([np.flatnonzero(train.users == u)[:k] for u in users])


def als_system(m, train, kept, user):
    """(A_u, b_u) of the ALS objective on the kept rows: sum c (p - x.y)^2 + reg |x|^2 (items fixed)."""
    y = m.item_factors.detach().numpy()
    reg, alpha = float(m.cfg["reg"]), float(m.cfg["alpha"])
    items = train.items[kept & (train.users == user)]
    a = y.T @ y + alpha * y[items].T @ y[items] + reg * np.eye(y.shape[1])
    b = (1 + alpha) * y[items].sum(0)
    return a, b


@pytest.mark.parametrize("confidence", ["linear", "bm25"])
def test_newton_retained_on_als_equals_the_per_user_resolve(confidence):
    """Items frozen, damping 0: one Newton step on the quadratic J_R is Unlearn-ALS's re-solve
    (with bm25 every cell's confidence changes with F: J_R reads them all)."""
    train = interactions(30, 20, 200)
    m = fitted_als(train, 30, 20, confidence=confidence)
    forget = forget_some(train)
    kept = np.ones(len(train), dtype=bool)
    items_before = m.item_factors.detach().clone()
    step = InfluenceStep(m, "als", InfluenceConfig(block="users", form="newton_retained", damping=0.0))
    rep = step(train, kept, forget, torch.Generator())
    ref = fitted_als(train, 30, 20, confidence=confidence)
    ref.unobserve(train.users[forget], train.items[forget])
    ref.partial_fit_users(np.unique(train.users[forget]))
    assert torch.equal(m.item_factors, items_before)
    assert float((m.user_factors - ref.user_factors).abs().max()) < 1e-10
    assert rep["converged"] and rep["hvps"] == 3 and rep["block_users"] == 2


def test_removal_with_the_full_data_hessian_is_its_closed_form_and_not_the_resolve():
    train = interactions(30, 20, 200)
    m = fitted_als(train, 30, 20)
    forget = forget_some(train)
    before = np.ones(len(train), dtype=bool)
    after = before.copy()
    after[forget] = False
    x0 = m.user_factors.detach().numpy().copy()
    InfluenceStep(m, "als", InfluenceConfig(block="users", form="removal", damping=0.0))(
        train, before, forget, torch.Generator()
    )
    x = m.user_factors.detach().numpy()
    for u in np.unique(train.users[forget]):
        a_d, b_d = als_system(m, train, before, u)
        a_r, b_r = als_system(m, train, after, u)
        g_d, g_r = 2 * (a_d @ x0[u] - b_d), 2 * (a_r @ x0[u] - b_r)
        closed = x0[u] + np.linalg.solve(2 * a_d, g_d - g_r)
        resolve = np.linalg.solve(a_r, b_r)
        assert np.abs(x[u] - closed).max() < 1e-10
        assert np.abs(x[u] - resolve).max() > 1e-3 * np.abs(resolve).max()


def test_newton_retained_on_mse_with_fixed_negatives_is_the_least_squares_solution():
    train = interactions(15, 12, 90)
    m = submodel("mse", 15, 12, dim=4, reg=0.3, num_neg=2)
    forget = forget_some(train, users=(2, 5, 7), k=1)
    kept = np.ones(len(train), dtype=bool)
    gen = torch.Generator()
    gen.manual_seed(3)
    step = InfluenceStep(m, "mse", InfluenceConfig(block="users", form="newton_retained", damping=0.0))
    items = m.item_emb.detach().clone()
    step(train, kept, forget, gen)
    # the negatives the step drew: the same generator over the same rows (the block's users' rows)
    gen.manual_seed(3)
    users = np.unique(train.users[forget])
    ids = np.flatnonzero(np.isin(train.users, users))
    rows = make_rows(train, ids, "cpu")
    rows = draw_negatives(rows, rows, 2, 12, gen)
    y = items.numpy()
    reg = 0.3
    for u in users:
        mine = (rows.users.numpy() == u) & ~np.isin(ids, forget)
        pos, neg = rows.items.numpy()[mine], rows.neg.numpy()[:, mine].reshape(-1)
        # sum form: 1/(1+m) sum (x.y - t)^2 over positives (t = 1) and negatives (t = 0) + reg/2 n_u |x|^2
        a = (y[pos].T @ y[pos] + y[neg].T @ y[neg]) / 3 + reg / 2 * len(pos) * np.eye(4)
        b = y[pos].sum(0) / 3
        assert np.abs(m.user_emb.detach().numpy()[u] - np.linalg.solve(a, b)).max() < 1e-10


# -- the influence step is the derivative of retraining ----------------------------------------------
def newton_minimise(f, theta, tol=1e-12, max_steps=100):
    """Saddle-free Newton (|eigenvalues|; MF's rotation null directions left out) with
    backtracking: a local minimum to `tol` in the gradient norm."""
    for _ in range(max_steps):
        theta = theta.detach().requires_grad_(True)
        g = torch.autograd.grad(f(theta), theta)[0]
        if float(g.norm()) < tol:
            break
        lam, q = torch.linalg.eigh(torch.autograd.functional.hessian(f, theta.detach()))
        inv = torch.where(lam.abs() > 1e-10 * lam.abs().max(), 1.0 / lam.abs(), torch.zeros_like(lam))
        step = -q @ (inv * (q.T @ g))
        t, f0 = 1.0, float(f(theta.detach()))
        while float(f(theta.detach() + t * step)) > f0 + 1e-4 * t * float(g @ step) and t > 1e-10:
            t *= 0.5
        theta = theta.detach() + t * step
    return theta.detach()


def test_the_influence_step_is_the_derivative_of_retraining():
    """Tiny logistic MF: retraining warm with F's rows weighted by (1 - eps) moves the scores by
    eps times the influence step's (linearised) move. The objective here is the sub-model's own
    mean loss, so a wrong sign, a wrong 1/n or a wrong Hessian in the engine fails."""
    n_users, n_items, d = 40, 30, 4
    train = interactions(n_users, n_items, 260, seed=5)
    m = submodel("bce", n_users, n_items, dim=d, reg=0.1, init_std=0.3, seed=2)
    forget = forget_some(train, users=(0, 3, 8), k=2)
    n = len(train)
    gen = torch.Generator()
    gen.manual_seed(11)
    rows = draw_negatives(make_rows(train, np.arange(n), "cpu"), make_rows(train, np.arange(n), "cpu"), 1, n_items, gen)
    f_rows = rows.subset(torch.as_tensor(np.isin(rows.ids, forget)))

    def split(theta):
        return theta[: n_users * d].view(n_users, d), theta[n_users * d :].view(n_items, d)

    def mean_loss(theta, r):
        with substituted(m, *split(theta)):
            return m.loss((r.users, r.items, r.neg))

    def reweighted(eps):  # (1/n) [sum_D l - eps sum_F l], from the sub-model's own mean loss
        return lambda th: mean_loss(th, rows) - eps * len(f_rows) / n * mean_loss(th, f_rows)

    u, i = tables(m)
    theta0 = newton_minimise(reweighted(0.0), torch.cat([u.detach().reshape(-1), i.detach().reshape(-1)]))
    assert float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(reweighted(0.0), theta0))[0]) > -1e-12
    with torch.no_grad():
        u.copy_(split(theta0)[0])
        i.copy_(split(theta0)[1])
    gen.manual_seed(11)
    cfg = InfluenceConfig(block="all", form="removal", damping=0.0, tol=1e-12, max_iter=2000)
    rep = InfluenceStep(m, "bce", cfg)(train, np.ones(n, dtype=bool), forget, gen)
    assert not rep["negative_curvature"]
    du, di = u.detach() - split(theta0)[0], i.detach() - split(theta0)[1]
    u0, i0 = split(theta0)
    ds_if = du @ i0.T + u0 @ di.T
    eps = 1e-3
    theta_eps = newton_minimise(reweighted(eps), theta0)
    s0, s_eps = u0 @ i0.T, split(theta_eps)[0] @ split(theta_eps)[1].T
    err = float(((s_eps - s0) / eps - ds_if).norm() / ds_if.norm())
    assert err < 1e-2, err


# -- invariances ---------------------------------------------------------------------------------------
def test_an_empty_request_leaves_the_parameters_bit_identical():
    train = interactions()
    m = submodel("bpr")
    before = [t.detach().clone() for t in tables(m)]
    rep = InfluenceStep(m, "bpr", InfluenceConfig(block="all"))(
        train, np.ones(len(train), bool), np.zeros(0, int), torch.Generator()
    )
    assert rep["solver_iters"] == 0 and rep["hvps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, tables(m)))


@pytest.mark.parametrize("block,damping", [("users", 0.01), ("users_items", 0.0)])
def test_a_rotation_of_the_factors_leaves_the_unlearned_scores_unchanged(block, damping):
    train = interactions(20, 15, 120)
    forget = forget_some(train, users=(1, 6), k=2)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64))
    scores = []
    for rotate in (False, True):
        m = submodel("bce", 20, 15, dim=4, reg=0.5, init_std=0.5)
        if rotate:
            with torch.no_grad():
                m.user_emb.copy_(m.user_emb @ q)
                m.item_emb.copy_(m.item_emb @ q)
        gen = torch.Generator()
        gen.manual_seed(4)
        InfluenceStep(m, "bce", InfluenceConfig(block=block, damping=damping, tol=1e-12, max_iter=500))(
            train, np.ones(len(train), bool), forget, gen
        )
        scores.append(m.user_emb.detach() @ m.item_emb.detach().T)
    assert float((scores[0] - scores[1]).abs().max()) < 1e-8


def test_the_direct_solver_is_refused_where_the_users_interact():
    from unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="block-diagonal"):
        InfluenceConfig(block="users", solver="direct").solver_for("lightgcn")
    with pytest.raises(ConfigError, match="block-diagonal"):
        InfluenceConfig(block="khop", solver="direct").solver_for("bpr")
    assert InfluenceConfig(block="users").solver_for("lightgcn") == "cg"
    assert InfluenceConfig(block="users").solver_for("wmf") == "direct"


def test_the_khop_block_is_f_and_its_neighbours():
    from unlearn.influence import select

    users = np.array([0, 0, 1, 2, 3])
    items = np.array([0, 1, 1, 2, 3])
    u, i = select("khop", np.array([0]), np.array([0]), users, items, 4, 4, hops=1)
    assert u.tolist() == [0] and i.tolist() == [0, 1]  # user 0's items; item 0's users (only 0)
    u, i = select("khop", np.array([0]), np.array([0]), users, items, 4, 4, hops=2)
    assert u.tolist() == [0, 1] and i.tolist() == [0, 1]
    u, i = select("users_items", np.array([0]), np.array([0]), users, items, 4, 4)
    assert u.tolist() == [0] and i.tolist() == [0]
