"""One scale for seconds timed in different processes.

A cached retrain oracle keeps the seconds of the process that trained it, under that process's
load and machine. Every run therefore times a fixed calibration workload: a few epochs of its own
sub-model on a fixed, seeded sample of the training rows. The workload depends only on the data
split and the sub-model's settings, which a run shares with every oracle it may read from a cache,
so the ratio of the two calibrations carries the oracle's seconds onto this process's scale.
The workload is timed several times and the median kept; a run calibrates before fitting and
again after unlearning, and uses the mean of the two.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from . import io
from .data.interactions import TrainSet
from .metrics.keys import KEYS
from .metrics.timing import Span, clock
from .registry import SUBMODELS
from .runtime import Runtime
from .seeding import derive_seed, numpy_rng

ROWS = 50_000  # training rows the workload fits on (all of them on smaller data)
EPOCHS = 2  # epochs (ALS: sweeps) of one repetition
REPEATS = 5  # timed repetitions after one untimed one; the median is kept
# settings that make a fit a fixed amount of work: no early stopping, no validation
FIXED_BUDGET = {
    "selection": "last",
    "patience": 0,
    "min_epochs": 0,
    "epochs": EPOCHS,
    "iterations": EPOCHS,
    "tol": 0.0,
    "valid_metric": None,
}


@dataclass(frozen=True)
class Calibration:
    """The median Span of the workload and the workload's identity (`key`)."""

    span: Span
    key: str

    def record(self, prefix: str = "calibration") -> dict:
        return {**self.span.keys(prefix), f"{prefix}.key": self.key}

    @staticmethod
    def from_record(rec: dict, prefix: str = "calibration") -> "Calibration | None":
        if rec.get(f"{prefix}_s") is None or rec.get(f"{prefix}.key") is None:
            return None
        return Calibration(
            Span(float(rec[f"{prefix}_s"]), float(rec.get(f"{prefix}_cpu_s") or "nan")), str(rec[f"{prefix}.key"])
        )

    def mean(self, other: "Calibration") -> "Calibration":
        return Calibration((self.span + other.span).scaled(0.5), self.key)


def workload(data: TrainSet, submodel: dict) -> tuple[TrainSet, dict, str]:
    """(the sample, the sub-model settings, the workload's key) for `data` and `submodel`."""
    rows = data.rows
    n = len(rows)
    index = np.sort(numpy_rng(0, "calibration", n).choice(n, size=min(n, ROWS), replace=False))
    sample = TrainSet(
        data.n_users, data.n_items, rows.subset(index), data.all_valid.subset(np.arange(0)), features=data.features
    )
    cfg = {**submodel, **{k: v for k, v in FIXED_BUDGET.items() if k in submodel or k in _defaults(submodel)}}
    key = io.stable_hash(
        {
            "rows": sample.rows.content_hash(),
            "n": [data.n_users, data.n_items],
            "submodel": cfg,
            "rows_n": ROWS,
            "epochs": EPOCHS,
        },
        16,
    )
    return sample, cfg, key


def _defaults(submodel: dict) -> dict:
    return getattr(SUBMODELS.get(submodel["name"]), "defaults", {})


def calibrate(data: TrainSet, submodel: dict, runtime: Runtime, repeats: int = REPEATS) -> Calibration:
    """Time the workload `repeats` times (after one untimed run) and keep the median wall and CPU
    seconds."""
    sample, cfg, key = workload(data, submodel)
    cls = SUBMODELS.get(submodel["name"])
    seed = derive_seed(0, "calibration")
    spans = []
    for i in range(repeats + 1):
        model = cls(data.n_users, data.n_items, cfg, runtime=runtime)
        runtime.sync()
        t0 = clock()
        model.fit(sample, seed)
        runtime.sync()
        if i:  # the first run pays first calls and compilation
            spans.append(clock() - t0)
    return Calibration(Span(statistics.median(s.wall for s in spans), statistics.median(s.cpu for s in spans)), key)


KEYS.declare(
    "calibration_s",
    "calibration",
    unit="s",
    group="efficiency",
    doc="wall seconds of the fixed calibration workload in this process (mean of two medians)",
)
KEYS.declare(
    "calibration_cpu_s",
    "calibration CPU",
    unit="s",
    group="efficiency",
    doc="process CPU seconds of the calibration workload",
)
KEYS.declare(
    "calibration.drift",
    "calibration drift",
    group="efficiency",
    doc="the calibration after unlearning over the one before fitting: 1 when the load stayed the same",
)
