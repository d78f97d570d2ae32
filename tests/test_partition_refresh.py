"""Partitions that forget: `partition_drift` of a kept partition against one rebuilt on
train minus F, and `method.partition_refresh=rebuild`, which makes a clustered pipeline exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearn  # noqa: F401  (fills the registries)
from unlearn.data.interactions import TrainSet
from unlearn.errors import ConfigError
from unlearn.metrics.completeness import score_gaps
from unlearn.partition.base import adjusted_rand_index
from unlearn.registry import METHODS

from .helpers import small_synthetic

EMB = {"name": "wmf", "epochs": 3, "dim": 8}


@pytest.fixture(scope="module")
def data():
    return small_synthetic()


def spec(method="receraser", part="ubp", refresh="keep", n_shards=4):
    return {
        "method": {"name": method, "partition_refresh": refresh},
        "submodel": {"name": "bpr", "epochs": 3, "patience": 2, "dim": 8},
        "partitioner": {"name": part, "n_shards": n_shards, "embedding": EMB},
        "aggregator": {"name": "mean"},
        "seed": 0,
    }


def fitted(ds, s):
    m = METHODS.get(s["method"]["name"])(s)
    m.fit(TrainSet(ds.n_users, ds.n_items, ds.train, ds.valid))
    return m


def user_rows(ds, users):
    return np.flatnonzero(np.isin(ds.train.users, users))


def test_adjusted_rand_index():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, a) == 1.0
    assert adjusted_rand_index(a, (a + 1) % 3) == 1.0  # the same grouping under other labels
    assert adjusted_rand_index(a, np.array([0, 1, 0, 1, 0, 1])) < 0.0


def test_drift_is_zero_for_random_and_for_a_deletion_that_changes_no_embedding(data):
    full = TrainSet(data.n_users, data.n_items, data.train, data.valid)
    sisa = fitted(data, {**spec("sisa", part="random"), "partitioner": {"name": "random", "n_shards": 4}})
    assert sisa.partition_drift(full.without(user_rows(data, [3, 17]))) == {
        "partition_drift": 0.0,
        "partition_drift.ari": 1.0,
    }
    ubp = fitted(data, spec())
    absent = data.n_users - 1 if not np.isin(data.n_users - 1, data.train.users) else None
    rows = user_rows(data, [absent]) if absent is not None else np.zeros(0, dtype=np.int64)
    assert len(rows) == 0  # a user with no rows: train minus F is train, the embeddings do not change
    assert ubp.partition_drift(full.without(rows)) == {"partition_drift": 0.0, "partition_drift.ari": 1.0}
    drift = ubp.partition_drift(full.without(user_rows(data, list(range(0, 160, 8)))))
    assert 0.0 < drift["partition_drift"] <= 1.0 and drift["partition_drift.ari"] < 1.0  # it can fail


def test_rebuild_equals_a_replica_that_partitions_train_minus_f_from_scratch(data):
    m = fitted(data, spec(refresh="rebuild"))
    before = m.partition.row_shard.copy()
    rows = user_rows(data, [3, 17, 42])
    cost = m.unlearn(rows)
    minus = TrainSet(data.n_users, data.n_items, data.train, data.valid).without(rows)
    scratch = METHODS.get("receraser")(spec(refresh="rebuild"))
    scratch.fit(minus)  # partition, shards and aggregator from nothing on train minus F
    assert np.array_equal(m.partition.row_shard, scratch.partition.row_shard)
    moved = before != m.partition.row_shard
    assert set(cost.shards_retrained) == {
        int(s) for s in np.concatenate([before[moved], m.partition.row_shard[moved]]) if s >= 0
    }
    assert cost.partition_s is not None and cost.partition_s.wall > 0  # the re-pretraining is paid for
    for replica in (scratch, m.exact_replica(minus)):
        assert score_gaps(m.score, replica.score, data.n_users, 64, torch.device("cpu"))["max_abs"] == 0.0
    assert m.partition_drift(minus) == {"partition_drift": 0.0, "partition_drift.ari": 1.0}


def test_keep_is_the_default_and_unknown_refresh_is_refused():
    s = spec()
    del s["method"]["partition_refresh"]
    assert METHODS.get("receraser")(s).refresh == "keep"
    with pytest.raises(ConfigError, match="partition_refresh"):
        METHODS.get("receraser")(spec(refresh="sometimes"))


def test_receraser_deleted_users_collapse_under_the_transfer_and_not_when_untransferred(data):
    """A deleted user's vector is its never-trained shard vectors; the released scoring passes them
    through the transfers (shared biases), `absent_users=untransferred` scores their plain mean."""
    from unlearn.metrics.completeness import mean_pairwise_cosine

    out = {}
    for absent in ("transferred", "untransferred"):
        s = {**spec(), "aggregator": {"name": "attention", "epochs": 3, "patience": 2, "absent_users": absent}}
        m = fitted(data, s)
        users = list(range(0, 160, 10))
        rows = user_rows(data, users)
        m.unlearn(rows)
        vec = m.user_vectors(torch.as_tensor(users))
        out[absent] = mean_pairwise_cosine(vec[""])
        # every deleted user is absent: under `untransferred` the scoring vector is the plain mean
        assert torch.equal(vec[""], vec[".untransferred"]) == (absent == "untransferred")
        minus = TrainSet(data.n_users, data.n_items, data.train, data.valid).without(rows)
        replica = m.exact_replica(minus)  # the option is part of the method: still exact
        assert score_gaps(m.score, replica.score, data.n_users, 64, torch.device("cpu"))["max_abs"] == 0.0
    assert out["transferred"] > 0.9 and out["untransferred"] < 0.5
