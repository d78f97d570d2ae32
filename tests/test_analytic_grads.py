"""The closed-form gradient step of the dot-product sub-models (bpr, bce, mse): the gradients
autograd computes for the same batch, a fit that is deterministic, and the fit autograd trains."""

import numpy as np
import pytest
import torch

from unlearn.data.interactions import TrainSet
from unlearn.errors import ConfigError
from unlearn.models.analytic import DotProductGrads
from unlearn.registry import SUBMODELS

CASES = [
    ("bpr", {}),
    ("bpr", {"dropout": 0.3}),
    ("bce", {"num_neg": 3}),
    ("bce", {"num_neg": 2, "dropout": 0.2}),
    ("mse", {}),  # explicit ratings: regression on the positives alone
    ("mse", {"num_neg": 2}),  # sampled negatives with target 0
]


def trainset(d):
    return TrainSet(d.n_users, d.n_items, d.train, d.valid)


@pytest.mark.parametrize("compiled", [True, False], ids=["cpu-loops", "torch-ops"])
@pytest.mark.parametrize("name,cfg", CASES)
def test_closed_form_gradients_equal_autograd(synthetic, name, cfg, compiled):
    model = SUBMODELS.get(name)(synthetic.n_users, synthetic.n_items, {**cfg, "reg": 0.01, "batch_size": 128, "dim": 8})
    model.begin_fit(trainset(synthetic), seed=0)
    model.train()
    with torch.no_grad():  # away from the near-zero start, where every gradient is tiny
        model.user_emb.normal_(0, 0.5)
        model.item_emb.normal_(0, 0.5)
    batch = next(iter(model.batches(model._gen)))
    state = model._gen.get_state()  # both paths draw the same dropout mask
    model.zero_grad()
    model.loss(batch).backward()
    expected = model.user_emb.grad.clone(), model.item_emb.grad.clone()
    model._gen.set_state(state)
    users, items = model.score_slots(batch)
    grads = DotProductGrads(model.user_emb, model.item_emb)
    assert grads.compiled  # CPU float32 tables take the compiled loops by default
    grads.compiled = compiled
    grads.fill(
        users,
        items,
        lambda s: model.score_grad(batch, s),
        model.cfg["reg"],
        model.dropout_keep(len(users)),
        float(model.cfg.get("dropout", 0.0)),
    )
    for want, got in zip(expected, (model.user_emb.grad, model.item_emb.grad)):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["bpr", "bce", "mse"])
def test_closed_form_fit_is_deterministic_and_matches_the_autograd_fit(synthetic, name):
    cfg = {"dim": 8, "epochs": 3, "patience": 0, "lr": 0.01, "batch_size": 256}

    def fit(grad):
        m = SUBMODELS.get(name)(synthetic.n_users, synthetic.n_items, {**cfg, "grad": grad})
        m.fit(trainset(synthetic), seed=4)
        return m.user_emb.detach().clone(), m.item_emb.detach().clone()

    first, again, auto = fit("analytic"), fit("analytic"), fit("autograd")
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    for a, b in zip(first, auto):  # same gradients to rounding, so the same parameters to rounding
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_unknown_gradient_path_is_refused():
    with pytest.raises(ConfigError, match="submodel.grad"):
        SUBMODELS.get("bpr")(5, 5, {"grad": "numeric"})


def test_compiled_step_clears_the_rows_the_previous_batch_wrote(synthetic):
    """The compiled loops zero only the rows the last batch touched: a second batch's gradient
    equals that batch's gradient into fresh buffers, bit for bit."""
    model = SUBMODELS.get("bpr")(synthetic.n_users, synthetic.n_items, {"batch_size": 64, "dim": 8})
    model.begin_fit(trainset(synthetic), seed=0)
    first, second = list(model.batches(model._gen))[:2]

    def fill(grads, batch):
        users, items = model.score_slots(batch)
        grads.fill(users, items, lambda s: model.score_grad(batch, s), 1e-3)
        return grads.user_grad.clone(), grads.item_grad.clone()

    reused = DotProductGrads(model.user_emb, model.item_emb)
    fill(reused, first)
    after = fill(reused, second)
    fresh = fill(DotProductGrads(model.user_emb, model.item_emb), second)
    assert all(torch.equal(a, b) for a, b in zip(after, fresh))


def _fit_epochs(synthetic_data, name, cfg, rows_only, epochs=3, users=None):
    """(user table, item table, optimiser state tensors, model) after `epochs` epochs, with the
    row-restricted step (rows_only) or the optimiser's dense step."""
    data = trainset(synthetic_data)
    if users is not None:
        data = data.select(np.isin(synthetic_data.train.users, users))
    m = SUBMODELS.get(name)(synthetic_data.n_users, synthetic_data.n_items, cfg)
    opt = m.begin_fit(data, seed=2)
    m._grads = DotProductGrads(m.user_emb, m.item_emb)
    m._grads.row_sparse_steps = rows_only
    for _ in range(epochs):
        m.train_epoch(opt)
    state = [t.clone() for p in (m.user_emb, m.item_emb) for t in opt.state[p].values()]
    return [m.user_emb.detach().clone(), m.item_emb.detach().clone()], state, m


ROW_CASES = [("bpr", {"dropout": 0.3}), ("bce", {"num_neg": 2}), ("mse", {})]
ROW_OPTIMIZERS = {"adagrad": {"optimizer": "adagrad", "lr": 0.05, "adagrad_init": 1e-8}}


@pytest.mark.parametrize("opt_name", list(ROW_OPTIMIZERS))
@pytest.mark.parametrize("name,cfg", ROW_CASES)
def test_row_restricted_steps_train_the_dense_steps_fit(synthetic, name, cfg, opt_name):
    """Adagrad on the batch's rows (the CPU default) trains the fit the optimiser's dense step
    trains: parameters, sums and step counts to float rounding (the same bits where the compiler
    contracts as torch's kernels do), and deterministically."""
    cfg = {**cfg, **ROW_OPTIMIZERS[opt_name], "dim": 8, "epochs": 3, "patience": 0, "reg": 0.01, "batch_size": 64}
    (p_rows, s_rows, _), (p_again, s_again, _), (p_dense, s_dense, _) = (
        _fit_epochs(synthetic, name, cfg, True),
        _fit_epochs(synthetic, name, cfg, True),
        _fit_epochs(synthetic, name, cfg, False),
    )
    assert all(torch.equal(a, b) for a, b in zip(p_rows + s_rows, p_again + s_again))
    assert len(s_rows) == len(s_dense)
    for got, want in zip(p_rows + s_rows, p_dense + s_dense):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_row_steps_are_taken_only_where_they_are_the_dense_step():
    from unlearn.models.row_steps import AdagradRows, row_step

    p = torch.nn.Parameter(torch.zeros(3, 2))
    assert isinstance(row_step(torch.optim.Adagrad([p], lr=0.1), (p,)), AdagradRows)
    assert row_step(torch.optim.Adam([p], lr=0.1), (p,)) is None  # Adam takes torch's own step
    assert row_step(torch.optim.Adagrad([p], lr=0.1, weight_decay=0.01), (p,)) is None  # decays every row
    assert row_step(torch.optim.Adagrad([p], lr=0.1, lr_decay=0.1), (p,)) is None
    assert row_step(torch.optim.Adam([p], lr=0.1, weight_decay=0.01), (p,)) is None
    assert row_step(torch.optim.Adam([p], lr=0.1, amsgrad=True), (p,)) is None
    assert row_step(torch.optim.SGD([p], lr=0.1), (p,)) is None


def _bpr_adagrad_epochs(synthetic_data, cfg, kernel, epochs=2):
    """Parameters, Adagrad sums and step counts, gradient tables, last-batch rows and the
    generator's next draw after `epochs` epochs of bpr with Adagrad: whole epochs compiled
    (kernel) or batch by batch with the compiled loops' dL/ds (`analytic_cpu.bpr_score_grad`)."""
    from unlearn.models import analytic_cpu

    m = SUBMODELS.get("bpr")(synthetic_data.n_users, synthetic_data.n_items, cfg)
    opt = m.begin_fit(trainset(synthetic_data), seed=4)
    m._grads = DotProductGrads(m.user_emb, m.item_emb)
    m._grads.epoch_kernels = kernel
    if not kernel:

        def numba_score_grad(batch, s):
            g = np.empty((len(s), 2), np.float32)
            analytic_cpu.bpr_score_grad(s.numpy(), g)
            return torch.from_numpy(g)

        m.score_grad = numba_score_grad
    for _ in range(epochs):
        m.train_epoch(opt)
    tensors = [
        m.user_emb.detach(),
        m.item_emb.detach(),
        m.user_emb.grad,
        m.item_emb.grad,
        *(t for p in (m.user_emb, m.item_emb) for t in opt.state[p].values()),
    ]
    return [t.clone() for t in tensors], m._grads._stale, torch.rand(3, generator=m._gen)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_whole_epoch_kernel_takes_the_per_batch_steps(synthetic, dropout, monkeypatch):
    """A CPU Adagrad BPR epoch in one compiled call per chunk of batches is the per-batch
    compiled step, batch for batch: the same bits given the same dL/ds (chunks of 3 batches and a
    short last batch exercise every boundary), the same draws from the fit's generator (dropout
    masks drawn a chunk at once), and the state the next epoch starts from."""
    from unlearn.models import analytic

    monkeypatch.setattr(analytic, "EPOCH_CHUNK_BATCHES", 3)
    cfg = {
        "optimizer": "adagrad",
        "lr": 0.05,
        "adagrad_init": 1e-8,
        "reg": 0.01,
        "batch_size": 37,
        "dropout": dropout,
        "dim": 8,
    }
    assert len(synthetic.train.users) % 37 and len(synthetic.train.users) > 10 * 37
    (got, got_stale, got_next), (want, want_stale, want_next) = (
        _bpr_adagrad_epochs(synthetic, cfg, True),
        _bpr_adagrad_epochs(synthetic, cfg, False),
    )
    assert len(got) == len(want) == 8
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert all(np.array_equal(a, b) for a, b in zip(got_stale, want_stale))
    assert torch.equal(got_next, want_next)


def test_whole_epoch_kernel_runs_only_bprs_own_adagrad_fits(synthetic):
    """bce and mse (other dL/ds) and optimisers whose step is not Adagrad's row step train batch
    by batch."""
    assert SUBMODELS.get("bpr")(4, 4, {}).compiled_epoch == "bpr"
    assert SUBMODELS.get("bce")(4, 4, {}).compiled_epoch is None
    assert SUBMODELS.get("mse")(4, 4, {}).compiled_epoch is None
    for cfg, ready in (
        ({"optimizer": "adagrad", "lr": 0.05}, True),
        ({"optimizer": "adam"}, False),
        ({"optimizer": "sgd", "lr": 0.05}, False),
    ):
        m = SUBMODELS.get("bpr")(synthetic.n_users, synthetic.n_items, {**cfg, "dim": 4})
        opt = m.begin_fit(trainset(synthetic), seed=0)
        assert DotProductGrads(m.user_emb, m.item_emb).adagrad_epoch_ready(opt) is ready, cfg
