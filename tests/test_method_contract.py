"""The contract every registered method keeps, run on each one as a user composes it
(`method=<name>` on the synthetic dataset, a few epochs): shapes, fresh gradient-free scores, an
empty request that changes nothing, determinism on CPU, exactness where a method claims it, and a
state round trip where a method can be cached. A new method is covered by registering it."""

import numpy as np
import pytest
import torch

import unlearn  # noqa: F401  (fills the registries)
from unlearn.data import TrainSet
from unlearn.lifecycle import prepare
from unlearn.methods.base import Method, ShardedMethod
from unlearn.registry import METHODS
from unlearn.runtime import Runtime

from .helpers import run_config

# the method option a user picks for each registered method, and what keeps it small here
SMALL = ["runtime.threads=1", "runtime.progress=false"]
EPOCHS = ["submodel.epochs=3", "submodel.min_epochs=0"]
OPTIONS = {
    "eemu": ["method=eemu_smoke", "method.meta_epochs=1", *EPOCHS],
    "receraser": ["method=receraser", *EPOCHS, "++aggregator.epochs=2", "++partitioner.embedding.epochs=2"],
    "unlearn_als": ["method=unlearn_als", "submodel.iterations=3"],
}


def built(name: str, tmp_path, seed: int = 0):
    """(method, the data it fits, the request's rounds), through the lifecycle's own preparation."""
    overrides = OPTIONS.get(name, [f"method={name}", *EPOCHS])
    cfg = run_config(
        ["dataset=synthetic", "deletion=users_stream", f"seed={seed}", *SMALL, *overrides], tmp_path / str(seed)
    )
    cfg["cache_dir"] = None
    p = prepare(cfg, Runtime.from_config(cfg["runtime"]))
    data = TrainSet(p.data.n_users, p.data.n_items, p.data.train, p.data.valid, features=p.data.info.get("features"))
    return p.method, data, p.request.rounds


def scores(method, n_users: int) -> torch.Tensor:
    return method.score(torch.arange(n_users))


NAMES = sorted(METHODS.names())
# sharded methods end where a fit on the retained rows does (retrain: one shard); Unlearn-ALS is
# judged against the oracle's objective, approximate methods by what they leave
EXACT = [n for n in NAMES if issubclass(METHODS.get(n), ShardedMethod)]
CACHEABLE = [n for n in NAMES if METHODS.get(n).state_dict is not Method.state_dict]


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_fit_score_unlearn_shapes_and_fresh_gradient_free_scores(name, tmp_path):
    method, data, rounds = built(name, tmp_path)
    method.fit(data)
    users = torch.arange(data.n_users)
    s = method.score(users)
    assert s.shape == (data.n_users, data.n_items) and s.dtype.is_floating_point
    assert not s.requires_grad and torch.isfinite(s).all()
    again = method.score(users)
    s.add_(1.0)  # a caller that edits what it got must not edit the model
    assert torch.equal(method.score(users), again)
    for rows in rounds:
        method.unlearn(rows)
    after = scores(method, data.n_users)
    assert after.shape == s.shape and not after.requires_grad and torch.isfinite(after).all()
    assert isinstance(method.describe(), dict)


def test_an_empty_request_changes_nothing(name, tmp_path):
    method, data, _ = built(name, tmp_path)
    method.fit(data)
    before = scores(method, data.n_users)
    method.unlearn(np.array([], dtype=np.int64))
    assert torch.equal(scores(method, data.n_users), before)


def test_the_same_seed_gives_the_same_bits_on_cpu(name, tmp_path):
    runs = []
    for _ in range(2):
        method, data, rounds = built(name, tmp_path)
        method.fit(data)
        for rows in rounds:
            method.unlearn(rows)
        runs.append(scores(method, data.n_users))
    assert torch.equal(*runs)


@pytest.mark.parametrize("name", EXACT)
def test_an_exact_method_ends_where_its_replica_does(name, tmp_path):
    method, data, rounds = built(name, tmp_path)
    method.fit(data)
    for rows in rounds:
        method.unlearn(rows)
    replica = method.exact_replica(data.without(np.concatenate(rounds)))
    assert torch.equal(scores(method, data.n_users), scores(replica, data.n_users))


@pytest.mark.parametrize("name", CACHEABLE)
def test_a_cacheable_method_round_trips_its_state(name, tmp_path):
    method, data, _ = built(name, tmp_path)
    method.fit(data)
    loaded, _, _ = built(name, tmp_path)
    loaded.load_state_dict(method.state_dict(), data)
    assert torch.equal(scores(loaded, data.n_users), scores(method, data.n_users))


def test_the_contract_reaches_the_families_it_names():
    assert {"retrain", "sisa", "receraser", "ultrare", "eemu"} <= set(EXACT) <= set(CACHEABLE)
    assert {"scif", "finetune", "unlearn_als"} <= set(NAMES) - set(EXACT)
