"""Like-for-like timing: wall and CPU seconds beside each other, retrain's own speedup, the
calibrated scale of a cached oracle, the timer floor, code-aware oracle caching, the warm-up and
the aggregator's epoch cap. No test here asserts how long anything takes."""

import math

import numpy as np
import pytest
import torch

from unlearn import oracle as oracles
from unlearn.calibration import Calibration, calibrate, workload
from unlearn.data.interactions import TrainSet
from unlearn.lifecycle import speedup
from unlearn.methods.costs import FitCost, UnlearnCost
from unlearn.metrics.timing import TIMER_FLOOR_S, Span, clock
from unlearn.registry import METHODS

from .helpers import FAST, compose_run, records, small_synthetic

pytestmark = pytest.mark.usefixtures("hydra_conf")

ONE_USER = ["deletion.ratio=null", "deletion.count=1", "completeness.exact_replica=false", *FAST]


def _cpu_partner(key: str) -> str:
    return key[: -len("_s")] + "_cpu_s"


@pytest.fixture(scope="module")
def sisa_then_retrain(hydra_conf, tmp_path_factory):
    """SISA trains and caches the oracle; retrain then runs into the same results directory."""
    results = tmp_path_factory.mktemp("results")
    sisa = compose_run(["method=sisa", "partitioner.n_shards=3", *ONE_USER], results)
    retrain = compose_run(["method=retrain", *ONE_USER], results)
    again = compose_run(["method=sisa", "partitioner.n_shards=3", "force=true", *ONE_USER], results)
    return sisa, retrain, again


def test_every_seconds_key_has_its_cpu_seconds_and_a_basis(sisa_then_retrain):
    for rec in sisa_then_retrain:
        seconds = [k for k in rec if k.endswith("_s") and not k.endswith("_cpu_s")]
        assert "fit_s" in seconds and "unlearn_s" in seconds and "retrain_s" in seconds
        assert [k for k in seconds if _cpu_partner(k) not in rec] == []
        assert rec["speedup.basis"] in ("self", "same_process", "calibrated", "uncalibrated")
        assert rec["threads"] == 1 and rec["warm_up"] == "ok"
        assert rec["calibration_s"] > 0 and rec["calibration.key"]


def test_retrain_speedup_is_one_with_a_cached_oracle(sisa_then_retrain):
    sisa, retrain, _ = sisa_then_retrain
    assert sisa["speedup.basis"] == "same_process" and not sisa["retrain_cached"]
    assert retrain["speedup"] == 1.0 and retrain["speedup.basis"] == "self"
    # its retrain_s is its own unlearning fit, not the seconds the cached oracle was trained in
    assert retrain["retrain_s"] == pytest.approx(retrain["unlearn_s"])


def test_a_cached_oracle_is_put_on_this_process_scale(sisa_then_retrain):
    sisa, _, again = sisa_then_retrain
    assert again["retrain_cached"] and again["speedup.basis"] == "calibrated"
    assert again["retrain_s.measured"] == pytest.approx(sisa["retrain_s"])
    assert again["calibration.key"] == sisa["calibration.key"]
    scale = again["calibration_s"] / sisa["calibration_s"]
    assert again["retrain_s"] == pytest.approx(sisa["retrain_s"] * scale)


def _cal(wall, cpu=None, key="k"):
    return Calibration(Span(wall, wall if cpu is None else cpu), key)


def test_speedup_bases_and_the_timer_floor():
    costs = [UnlearnCost(seconds=Span(0.5, 0.4)), UnlearnCost(seconds=Span(1.5, 1.2))]
    fresh = {"span": Span(4.0, 3.0), "epochs": 9, "cached": False, "calibration": None}
    out = speedup(costs, fresh, _cal(1.0), own=False)
    assert out["speedup.basis"] == "same_process" and out["speedup"] == pytest.approx(4.0 * 2 / 2.0)
    assert out["speedup.cpu"] == pytest.approx(3.0 * 2 / 1.6)
    # the oracle's process ran the workload in 2 s, this one in 1 s: its 4 s are 2 s here
    cached = {**fresh, "cached": True, "calibration": _cal(2.0, 1.5)}
    out = speedup(costs, cached, _cal(1.0, 0.5), own=False)
    assert out["speedup.basis"] == "calibrated" and out["retrain_s"] == pytest.approx(2.0)
    assert out["retrain_cpu_s"] == pytest.approx(1.0) and out["retrain_s.measured"] == 4.0
    # another workload (e.g. another sub-model's settings): not comparable, left as measured
    out = speedup(costs, {**cached, "calibration": _cal(2.0, key="other")}, _cal(1.0), own=False)
    assert out["speedup.basis"] == "uncalibrated" and out["retrain_s"] == 4.0
    # unlearning in no measurable time: a finite speedup at the floor, flagged
    zero = [UnlearnCost(seconds=0.0)]
    out = speedup(zero, fresh, _cal(1.0), own=False)
    assert math.isfinite(out["speedup"]) and out["speedup"] == pytest.approx(4.0 / TIMER_FLOOR_S)
    assert out["speedup.floored"] is True
    assert speedup(costs, fresh, _cal(1.0), own=True)["speedup"] == 1.0


def test_a_zero_second_plugin_method_gets_a_finite_flagged_speedup(hydra_conf, tmp_path):
    rec = compose_run(
        [
            "plugins=[tests.plugins.popularity_method]",
            "method.name=popularity",
            "completeness.seed_floor=false",
            *ONE_USER,
        ],
        tmp_path,
    )
    assert math.isfinite(rec["speedup"]) and rec["speedup"] > 0
    assert rec["speedup.floored"] == (rec["unlearn_s"] < TIMER_FLOOR_S)


def test_cost_records_write_wall_and_cpu_seconds():
    fit = FitCost(seconds=Span(2.0, 3.0), shards_s=Span(1.5, 2.5), pretrain_s=0.25).record()
    assert fit["fit_s"] == 2.0 and fit["fit_cpu_s"] == 3.0 and fit["fit.shards_cpu_s"] == 2.5
    assert fit["fit.pretrain_s"] == 0.25 and fit["fit.pretrain_cpu_s"] is None  # a plain number: CPU unknown
    rec = UnlearnCost.record(
        [
            UnlearnCost(seconds=Span(1.0, 2.0), extra={"sweeps_s": Span(0.5, 0.7), "n": 2}),
            UnlearnCost(seconds=Span(3.0, 1.0), extra={"sweeps_s": Span(0.5, 0.1), "n": 3}),
        ]
    )
    assert rec["unlearn_s"] == 4.0 and rec["unlearn_cpu_s"] == 3.0
    assert (
        rec["unlearn.sweeps_s"] == 1.0 and rec["unlearn.sweeps_cpu_s"] == pytest.approx(0.8) and rec["unlearn.n"] == 5
    )


def test_an_oracle_from_other_training_code_is_not_reused(hydra_conf, tmp_path, monkeypatch):
    first = compose_run(["method=sisa", "partitioner.n_shards=3", *ONE_USER], tmp_path)
    assert not first["retrain_cached"]
    monkeypatch.setattr(oracles, "training_code_version", lambda: "another-version")
    again = compose_run(["method=sisa", "partitioner.n_shards=3", "force=true", *ONE_USER], tmp_path)
    assert not again["retrain_cached"] and again["speedup.basis"] == "same_process"
    assert len(list((tmp_path / "cache" / "oracle").glob("*.json"))) == 4  # oracle and twin, twice
    assert len(records(tmp_path)) == 1


def test_calibration_is_a_fixed_workload_of_the_submodel():
    ds = small_synthetic()
    data = TrainSet(ds.n_users, ds.n_items, ds.train, ds.valid)
    sub = {"name": "bpr", "dim": 8, "epochs": 50, "patience": 3}
    sample, cfg, key = workload(data, sub)
    assert cfg["epochs"] == 2 and cfg["selection"] == "last" and cfg["dim"] == 8
    assert workload(data, sub)[2] == key and workload(data, {**sub, "dim": 16})[2] != key
    cal = calibrate(data, sub, __import__("unlearn.runtime", fromlist=["CPU"]).CPU, repeats=2)
    assert cal.key == key and cal.span.wall > 0 and cal.span.cpu > 0


def test_the_warm_up_leaves_the_fit_bit_identical():
    """The warm-up runs a throwaway copy of the method: the real fit draws the same numbers."""
    from unlearn.runtime import CPU
    from unlearn.warmup import warm_up

    ds = small_synthetic()
    data = TrainSet(ds.n_users, ds.n_items, ds.train, ds.valid)
    spec = {
        "method": {"name": "sisa"},
        "submodel": {"name": "bpr", "dim": 8, "epochs": 3},
        "partitioner": {"name": "random", "n_shards": 2},
        "aggregator": {"name": "mean"},
        "seed": 0,
    }
    users = torch.arange(ds.n_users)
    cold = METHODS.get("sisa")(spec)
    cold.fit(data)
    assert warm_up(spec, data, CPU, 2)["warm_up"] == "ok"
    warm = METHODS.get("sisa")(spec)
    warm.fit(data)
    assert torch.equal(cold.score(users), warm.score(users))


def test_clock_spans_add_and_subtract():
    t0 = clock()
    np.linalg.svd(np.random.default_rng(0).random((200, 200)))
    spent = clock() - t0
    assert spent.wall >= 0 and spent.cpu >= 0
    assert (spent + spent).wall == pytest.approx(2 * spent.wall) and sum([spent, spent], Span()) == spent + spent
    assert spent.keys("x") == {"x_s": spent.wall, "x_cpu_s": spent.cpu}
