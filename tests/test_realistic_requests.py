"""Realistic deletion requests: sensitive interactions of one genre (deletion=sensitive) and
injected spam users (deletion=spam). What they draw, what they leave alone, what they refuse, and
the probes that read them (sensitive exposure, target promotion)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from unlearn import lifecycle, oracle
from unlearn.data import load_dataset
from unlearn.data.features import SideFeatures
from unlearn.data.interactions import Dataset, Interactions
from unlearn.data.request_kinds import prepare_request
from unlearn.errors import ConfigError
from unlearn.metrics.keys import KEYS
from unlearn.metrics.stages import StageMetrics
from unlearn.runtime import CPU

from .helpers import FAST, compose_run

ROOT = Path(__file__).resolve().parents[1]
SENSITIVE = {
    "unit": "interaction",
    "selection": "sensitive",
    "genre": "Horror",
    "min_rating": 4,
    "ratio": None,
    "count": 1,
    "rounds": 5,
}
SPAM = {"unit": "user", "selection": "spam", "fake_ratio": 0.05, "targets": 3, "rounds": 1}
# synthetic data, spam strong enough to lift the targets of a tiny BPR model, completeness extras off
SPAM_RUN = [
    "deletion=spam",
    "deletion.fake_ratio=0.5",
    "deletion.targets=1",
    "completeness.seed_floor=false",
    "completeness.partition_drift=false",
    *FAST,
]


def preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "deletion" / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_dataset(yaml.safe_load((ROOT / "conf" / "dataset" / "ml100k.yaml").read_text()))


def with_genres(data: Dataset, genres: np.ndarray, names: list[str], ratings=None) -> Dataset:
    """`data` with the given item genres (and ratings) as its side features."""
    train = (
        data.train
        if ratings is None
        else Interactions(data.train.users, data.train.items, np.full(len(data.train), ratings), data.train.timestamps)
    )
    feats = SideFeatures(item_multi={"genre": genres.astype(np.float32)}, names={"genre": names})
    return Dataset(
        data.name,
        data.n_users,
        data.n_items,
        train,
        data.valid,
        data.test,
        data.split_hash,
        {**data.info, "features": feats},
    )


# -- sensitive ---------------------------------------------------------------------------------
def test_sensitive_takes_only_the_chosen_users_genre_rows_at_the_threshold(ml100k):
    data, req = prepare_request(ml100k, SENSITIVE, 0)
    assert data is ml100k  # validation and test as split; nothing added
    feats = ml100k.info["features"].get()
    horror = feats.item_multi["genre"][:, feats.names["genre"].index("Horror")] > 0
    tr = ml100k.train
    qualifies = horror[tr.items] & (tr.ratings >= 4)
    chosen = req.context["sensitive"]["users"]
    assert len(chosen) == 5 and len(req.rounds) == 5 and req.unit == "interaction"
    # F is every qualifying row of the chosen users, and nothing else (other rows kept)
    expected = np.flatnonzero(qualifies & np.isin(tr.users, chosen))
    assert np.array_equal(req.rows, expected) and req.rows.max() < len(tr)
    assert horror[tr.items[req.rows]].all() and (tr.ratings[req.rows] >= 4).all()
    assert all(len(np.unique(tr.users[r])) == 1 for r in req.rounds)  # one user a request
    kept = np.isin(tr.users, chosen) & ~qualifies
    assert kept.any() and not np.isin(np.flatnonzero(kept), req.rows).any()
    assert req.probes == ("sensitive_exposure",)


def test_sensitive_on_implicit_data_takes_every_row_of_the_genre(synthetic):
    genres = np.zeros((synthetic.n_items, 2))
    genres[::3, 0] = 1.0
    data = with_genres(synthetic, genres, ["G", "Other"], ratings=1.0)
    _, req = prepare_request(data, {**SENSITIVE, "genre": "g", "rounds": 1, "count": 4}, 0)
    tr = data.train
    assert req.context["sensitive"]["min_rating"] is None
    chosen = req.context["sensitive"]["users"]
    assert np.array_equal(req.rows, np.flatnonzero((genres[tr.items, 0] > 0) & np.isin(tr.users, chosen)))


def test_draws_are_deterministic_per_seed(ml100k, synthetic):
    a, b, c = (prepare_request(ml100k, SENSITIVE, s)[1] for s in (0, 0, 1))
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)
    assert [len(r) for r in a.rounds] == [len(r) for r in b.rounds]
    (d1, s1), (d2, s2), (d3, s3) = (prepare_request(synthetic, SPAM, s) for s in (0, 0, 1))
    assert d1.train.content_hash() == d2.train.content_hash() and np.array_equal(s1.rows, s2.rows)
    assert d1.split_hash == d2.split_hash and d1.split_hash != d3.split_hash
    assert d1.train.content_hash() != d3.train.content_hash()


# -- spam --------------------------------------------------------------------------------------
def test_spam_profiles_follow_the_recipe(synthetic):
    data, req = prepare_request(synthetic, {**SPAM, "rounds": None}, 0)
    spam = req.context["spam"]
    n_real = synthetic.n_users
    assert data.n_users == n_real + len(spam.fake_users)
    assert np.array_equal(spam.fake_users, np.arange(n_real, data.n_users))
    assert len(spam.fake_users) == max(1, round(0.05 * (synthetic.train.user_counts(n_real) > 0).sum()))
    # real rows keep their indices; F is exactly the appended fake rows; one request per fake user
    assert np.array_equal(data.train.users[: len(synthetic.train)], synthetic.train.users)
    assert np.array_equal(req.rows, np.arange(len(synthetic.train), len(data.train)))
    assert len(req.rounds) == len(spam.fake_users) and np.array_equal(req.deleted_users, spam.fake_users)
    counts = synthetic.train.item_counts(synthetic.n_items)
    present = np.flatnonzero(counts > 0)
    order = present[np.argsort(-counts[present], kind="stable")]
    fake = data.train.subset(req.rows)
    real_counts = synthetic.train.user_counts(n_real)
    median = int(round(np.median(real_counts[real_counts > 0])))
    for u in spam.fake_users:
        items = fake.items[fake.users == u]
        assert len(items) == len(np.unique(items)) == median + 3 and set(spam.targets) <= set(items)
        fillers = np.setdiff1d(items, spam.targets)
        assert counts[fillers].min() >= counts[order[int(0.2 * len(present)) - 1]]  # the most popular 20%
    assert counts[spam.targets].max() <= counts[order[len(present) - int(0.2 * len(present))]]  # the least popular 20%


def test_fake_users_never_reach_validation_test_or_evaluation(synthetic):
    data, req = prepare_request(synthetic, SPAM, 0)
    fake = req.context["spam"].fake_users
    assert data.valid is synthetic.valid and data.test is synthetic.test
    assert not np.isin(data.valid.users, fake).any() and not np.isin(data.test.users, fake).any()
    stages = StageMetrics(data, req, {"eval": {"loss_bootstrap": 0}}, CPU)
    assert not np.isin(stages.utility["after"].users, fake).any()
    probe = stages.probes[0][0]
    assert len(probe.users) and not np.isin(probe.users, fake).any()
    assert stages.membership.n_pairs == 0  # no held-out rows to attack with: the MIA is null


def test_fake_users_get_unknown_side_features(ml100k):
    data, req = prepare_request(ml100k, {**SPAM, "fake_ratio": 0.01}, 0)
    feats = data.info["features"].get()
    fake = req.context["spam"].fake_users
    for name, codes in feats.user_cat.items():
        assert len(codes) == data.n_users, name
        assert (codes[fake] == 0).all() and (codes[: ml100k.n_users] > 0).all(), name


def test_the_injection_changes_the_split_hash_and_so_the_oracle(synthetic):
    data, req = prepare_request(synthetic, SPAM, 0)
    assert data.split_hash != synthetic.split_hash
    spec = {"submodel": {"name": "bpr"}, "seed": 0}
    clean = oracle.oracle_key(synthetic.split_hash, req.content_hash(), spec)
    assert oracle.oracle_key(data.split_hash, req.content_hash(), spec) != clean
    other, _ = prepare_request(synthetic, {**SPAM, "targets": 4}, 0)
    assert other.split_hash != data.split_hash


def test_the_probes_read_what_reaches_the_top(synthetic):
    import torch

    from unlearn.metrics.exposure import SensitiveExposure, SpamPromotion

    data, req = prepare_request(synthetic, SPAM, 0)
    probe = SpamPromotion(data, req, CPU, ks=(5,))
    boost = torch.zeros(data.n_items)
    boost[req.context["spam"].targets] = 10.0
    first, last = (lambda u: boost.expand(len(u), -1).clone()), (lambda u: -boost.expand(len(u), -1).clone())
    top = probe.measure("before", first)
    assert top["target_hit@5"] == 1.0 and top["target_rank"] == 1.0
    bottom = probe.measure("retrain", last)
    assert bottom["target_hit@5"] == 0.0 and bottom["target_rank"] > data.n_items / 2
    probe.measure("after", last)
    out = probe.finish()
    assert out["attack_lift@5"] == 1.0 and out["residual_promotion@5"] == 0.0 and not out["attack_lift_flag@5"]
    probe.measure("after", first)
    assert probe.finish()["residual_promotion@5"] == 1.0

    genres = np.zeros((synthetic.n_items, 1))
    genres[::4, 0] = 1.0
    sens = with_genres(synthetic, genres, ["G"])
    _, req = prepare_request(sens, {**SENSITIVE, "genre": "G", "min_rating": None, "rounds": 1, "count": 5}, 0)
    probe = SensitiveExposure(sens, req, CPU, ks=(3,))
    genre_first = torch.as_tensor(genres[:, 0], dtype=torch.float32)
    assert probe.measure("after", lambda u: genre_first.expand(len(u), -1).clone()) == {
        "sensitive_exposure@3": 1.0,
        "sensitive_count@3": 3.0,
    }
    assert probe.measure("retrain", lambda u: -genre_first.expand(len(u), -1).clone())["sensitive_exposure@3"] == 0.0
    assert probe.finish()["sensitive_excess@3"] == 1.0


# -- refusals ----------------------------------------------------------------------------------
def _refusal(synthetic, ml100k):
    genres = np.zeros((synthetic.n_items, 2))
    genres[:10, 0] = 1.0
    with_g = with_genres(synthetic, genres, ["Present", "Absent"])
    return [
        (with_g, {**SENSITIVE, "genre": "Absent"}, "No user of dataset synthetic has a train row of genre Absent"),
        (ml100k, {**SENSITIVE, "genre": "Noir"}, "Unknown deletion.genre 'Noir' for dataset ml100k. Valid: unknown,"),
        (synthetic, SENSITIVE, "needs item genres, and dataset synthetic has none"),
        (with_g, {**SENSITIVE, "genre": "Present", "count": 10_000}, "deletion.count=10000 users per request"),
        (synthetic, {**SPAM, "fake_count": 10_000}, "10000 fake users are more than the settings allow"),
        (synthetic, {**SPAM, "fake_ratio": 1.5}, r"deletion.fake_ratio must lie in \(0, 1\]"),
        (synthetic, {**SPAM, "fake_count": 3, "rounds": 4}, "deletion.rounds=4 is more requests than the 3 fake users"),
        (synthetic, {**SPAM, "ratio": 0.05}, "forgets every fake user"),
        (synthetic, {**SPAM, "unit": "item"}, "deletion.selection=spam deletes users"),
        (synthetic, {**SPAM, "targets": 10_000}, "deletion.targets=10000 is more target items"),
    ]


def test_requests_that_cannot_be_drawn_are_refused_in_one_line(synthetic, ml100k):
    for data, cfg, match in _refusal(synthetic, ml100k):
        with pytest.raises(ConfigError, match=match) as err:
            prepare_request(data, cfg, 0)
        assert "\n" not in str(err.value), cfg


def test_a_refusal_comes_before_any_training(hydra_conf, tmp_path, monkeypatch, capsys):
    from unlearn.methods.base import ShardedMethod

    def no_training(*args, **kwargs):
        raise AssertionError("a refused request reached training")

    monkeypatch.setattr(ShardedMethod, "fit", no_training)
    for overrides, match in (
        (["deletion=sensitive"], "synthetic has none"),
        (["deletion=spam", "deletion.fake_count=100000"], "more than the settings allow"),
    ):
        with pytest.raises(SystemExit) as err:
            compose_run([*overrides, *FAST], tmp_path)
        printed = capsys.readouterr().err.strip()
        assert err.value.code == 2 and match in printed and "\n" not in printed, (overrides, printed)
    assert not list(tmp_path.glob("runs/*/result.json"))  # nothing written
    cfg = {
        "dataset": {"name": "synthetic", "loader": "synthetic"},
        "deletion": preset("sensitive"),
        **{
            axis: {"name": n}
            for axis, n in (("method", "retrain"), ("submodel", "bpr"), ("partitioner", "none"), ("aggregator", "none"))
        },
    }
    with pytest.raises(ConfigError, match="synthetic has none"):
        lifecycle.prepare(cfg, CPU)


def test_a_request_probe_on_another_kind_of_request_is_refused(synthetic):
    from unlearn.data.deletion import draw
    from unlearn.metrics.exposure import SpamPromotion

    req = draw(synthetic.train, synthetic.n_users, synthetic.n_items, {"unit": "user", "ratio": 0.1}, 0)
    with pytest.raises(ConfigError, match="reads a deletion.selection=spam request"):
        SpamPromotion(synthetic, req, CPU)


# -- whole runs --------------------------------------------------------------------------------
def test_residual_promotion_is_0_for_retrain_and_1_for_a_method_that_ignores_requests(hydra_conf, tmp_path):
    retrain = compose_run(["method=retrain", *SPAM_RUN], tmp_path)
    ignore = compose_run(
        ["method=retrain", "method.name=ignore_requests", "plugins=[tests.plugins.ignoring_method]", *SPAM_RUN],
        tmp_path,
    )
    ks = [10, 20, 50]
    assert retrain["split_hash"] == ignore["split_hash"] and ignore["retrain_cached"]  # one oracle for both
    lifted = [k for k in ks if not retrain[f"attack_lift_flag@{k}"]]
    assert lifted, "the attack lifted no target: the test would say nothing"
    for k in lifted:
        assert retrain[f"residual_promotion@{k}"] == 0.0 and ignore[f"residual_promotion@{k}"] == 1.0
        assert retrain[f"attack_lift@{k}"] == ignore[f"attack_lift@{k}"]
    for k in set(ks) - set(lifted):  # no lift: the row says nothing
        assert retrain[f"residual_promotion@{k}"] is None and retrain[f"attack_lift_flag@{k}"]
    for rec in (retrain, ignore):
        assert rec["mia_pairs"] == 0 and rec["mia_auc.after"] is None and rec["mia.reason"]
        assert rec["n_users"] - rec["spam.fake_users"] >= rec["spam.real_users"] > 0
        mine = [k for k in rec if k.startswith(("target_", "attack_", "residual_", "spam.", "mia."))]
        assert mine and all(k in KEYS for k in mine), [k for k in mine if k not in KEYS]


def test_a_sensitive_stream_records_each_request_and_its_exposure(hydra_conf, tmp_path):
    rec = compose_run(
        [
            "dataset=ml100k",
            "deletion=sensitive_stream",
            "deletion.rounds=2",
            "method=sisa",
            "partitioner.n_shards=2",
            "submodel.epochs=2",
            "submodel.dim=8",
            "runtime.progress=false",
            "runtime.threads=1",
            "completeness.seed_floor=false",
            "completeness.partition_drift=false",
            "completeness.exact_replica=false",
        ],
        tmp_path,
    )
    assert len(rec["unlearn_s.per_request"]) == 2 and rec["sensitive.users"] == 2 and rec["sensitive.genre"] == "Horror"
    for stage in ("before", "after", "retrain", "popularity"):
        assert 0.0 <= rec[f"sensitive_exposure@20.{stage}"] <= 1.0
        assert rec[f"sensitive_count@20.{stage}"] >= rec[f"sensitive_exposure@20.{stage}"]
    assert rec["sensitive_excess@20"] == rec["sensitive_exposure@20.after"] - rec["sensitive_exposure@20.retrain"]
    mine = [k for k in rec if k.startswith("sensitive")]
    assert all(k in KEYS for k in mine), [k for k in mine if k not in KEYS]


def test_an_approximate_method_unlearns_a_spam_stream_and_reports_what_it_left(hydra_conf, tmp_path):
    """The realistic kinds reach the approximate family too: finetune never moves the fake users'
    own rows (they have no retained row), but its residual promotion is still read against the
    oracle for every real user."""
    rec = compose_run(["method=finetune", *SPAM_RUN, "deletion.rounds=2"], tmp_path)
    assert rec["status"] == "ok" and rec["method.family"] == "approximate"
    assert len(rec["unlearn_s.per_request"]) == 2
    lifted = [k for k in (10, 20, 50) if rec[f"attack_lift@{k}"] >= 0.01]
    assert lifted, "the attack lifted no target: the test would say nothing"
    for k in lifted:
        after, oracle, before = (rec[f"target_hit@{k}.{s}"] for s in ("after", "retrain", "before"))
        assert rec[f"residual_promotion@{k}"] == pytest.approx((after - oracle) / (before - oracle))
