"""The closed-form gradient step of the dot-product sub-models (bpr, bce, mse): the gradients
autograd computes for the same batch, a fit that is deterministic, and the fit autograd trains."""
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
    ("mse", {}),               # explicit ratings: regression on the positives alone
    ("mse", {"num_neg": 2}),   # sampled negatives with target 0
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
    grads.fill(users, items, lambda s: model.score_grad(batch, s), model.cfg["reg"],
               model.dropout_keep(len(users)), float(model.cfg.get("dropout", 0.0)))
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


@pytest.mark.parametrize("name,cfg", [("bpr", {"dropout": 0.3}), ("bce", {"num_neg": 2}), ("mse", {})])
def test_row_sparse_adagrad_is_the_dense_step(synthetic, name, cfg, monkeypatch):
    """Adagrad applied to the batch's rows only (the CPU loops' step) trains the fit the dense
    torch step trains: parameters and accumulators to float rounding (the same bits where the
    machine's FMA matches torch's kernel), deterministic, and it leaves untouched rows alone."""
    from unlearn.models import analytic

    cfg = {**cfg, "dim": 8, "epochs": 3, "patience": 0, "optimizer": "adagrad", "lr": 0.05,
           "adagrad_init": 1e-8, "reg": 0.01, "batch_size": 64}

    def fit(sparse):
        monkeypatch.setattr(analytic, "row_sparse", (lambda opt: True) if sparse else (lambda opt: False))
        m = SUBMODELS.get(name)(synthetic.n_users, synthetic.n_items, cfg)
        opt = m.begin_fit(trainset(synthetic), seed=2)
        assert isinstance(opt, torch.optim.Adagrad)
        for _ in range(3):
            m.train_epoch(opt)
        sums = [opt.state[p]["sum"].clone() for p in (m.user_emb, m.item_emb)]
        return [m.user_emb.detach().clone(), m.item_emb.detach().clone(), *sums, opt.state[m.user_emb]["step"]]

    sparse, again, dense = fit(True), fit(True), fit(False)
    assert all(torch.equal(a, b) for a, b in zip(sparse, again))
    assert torch.equal(sparse[4], dense[4])  # the step counter advances once a batch either way
    for got, want in zip(sparse[:4], dense[:4]):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_row_sparse_step_is_taken_only_where_zero_gradients_change_nothing():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    assert analytic_row_sparse(torch.optim.Adagrad([p], lr=0.1))
    assert not analytic_row_sparse(torch.optim.Adagrad([p], lr=0.1, weight_decay=0.01))  # decays every row
    assert not analytic_row_sparse(torch.optim.Adagrad([p], lr=0.1, lr_decay=0.1))
    assert not analytic_row_sparse(torch.optim.Adam([p], lr=0.1))  # moments decay on every row


def analytic_row_sparse(opt):
    from unlearn.models.analytic import row_sparse

    return row_sparse(opt)
