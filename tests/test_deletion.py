import numpy as np
import pytest

from unlearn.data.deletion import draw
from unlearn.errors import ConfigError


def test_user_deletion_takes_all_train_rows_of_users(synthetic):
    d = synthetic
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "ratio": 0.1}, seed=0)
    users = np.unique(d.train.users[req.rows])
    assert len(users) == round(0.1 * len(np.unique(d.train.users))) == req.n_forget_users
    assert set(np.flatnonzero(np.isin(d.train.users, users))) == set(req.rows.tolist())
    assert np.array_equal(np.sort(req.deleted_users), users)


def test_selection_core_and_edge(synthetic):
    d = synthetic
    counts = d.train.user_counts(d.n_users)
    core = draw(d.train, d.n_users, d.n_items, {"unit": "user", "selection": "core", "count": 5}, 0)
    edge = draw(d.train, d.n_users, d.n_items, {"unit": "user", "selection": "edge", "count": 5}, 0)
    present = counts[counts > 0]
    assert counts[core.units].min() >= np.sort(present)[-5]
    assert counts[edge.units].max() <= np.sort(present)[4]


def test_item_and_interaction_units(synthetic):
    d = synthetic
    items = draw(d.train, d.n_users, d.n_items, {"unit": "item", "count": 3}, 0)
    assert set(np.unique(d.train.items[items.rows])) == set(items.units.tolist())
    rows = draw(d.train, d.n_users, d.n_items, {"unit": "interaction", "ratio": 0.05}, 0)
    assert rows.n_forget == round(0.05 * len(d.train))


def test_rounds_partition_the_forget_set(synthetic):
    d = synthetic
    req = draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": 2, "rounds": 3}, 0)
    assert len(req.rounds) == 3
    assert np.array_equal(np.sort(np.concatenate(req.rounds)), req.rows)
    assert all(len(set(d.train.users[r])) == 2 for r in req.rounds)


def test_seeded_and_independent_of_global_rng(synthetic):
    d = synthetic
    a = draw(d.train, d.n_users, d.n_items, {"unit": "user", "ratio": 0.1}, 0)
    np.random.seed(123)
    b = draw(d.train, d.n_users, d.n_items, {"unit": "user", "ratio": 0.1}, 0)
    c = draw(d.train, d.n_users, d.n_items, {"unit": "user", "ratio": 0.1, "seed": 9}, 0)
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"ratio": 0.0}, r"ratio must lie in \(0, 1\)"),
        ({"ratio": 1.5}, r"ratio must lie in \(0, 1\)"),
        ({"count": 10**6}, "count=1000000 must be between 1"),
        ({"unit": "session", "ratio": 0.1}, "Unknown deletion.unit 'session'. Valid: user, interaction, item"),
        ({"selection": "oldest", "ratio": 0.1}, "Unknown deletion.selection"),
        ({"unit": "item", "ratio": 0.02, "rounds": 5}, "rounds=5"),
        ({"unit": "user", "count": 100, "rounds": 2}, "divided by deletion.rounds=2"),
    ],
)
def test_bad_requests(synthetic, cfg, match):
    d = synthetic
    with pytest.raises(ConfigError, match=match):
        draw(d.train, d.n_users, d.n_items, {"unit": "user", **cfg}, 0)


def test_forget_set_as_large_as_train_is_refused(synthetic):
    d = synthetic
    n_users = len(np.unique(d.train.users))
    with pytest.raises(ConfigError, match="remove all of train"):
        draw(d.train, d.n_users, d.n_items, {"unit": "user", "count": n_users}, 0)
