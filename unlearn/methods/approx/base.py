"""The approximate-unlearning family's base: one sub-model, fitted as `retrain` fits it, whose
parameters unlearning changes in place instead of refitting them.

`ApproximateMethod(Method)` is not sharded (`partitioner` None; partitioner and aggregator `none`)
and builds no exact replica: what it leaves behind is read against the retrain oracle.

- `fit(data)`: one sub-model, from `derive_seed(seed, "shard", 0)` on `data.select(all rows)`,
  exactly as `retrain` fits its single shard, so M0 is retrain's model of all of train, bit for bit.
- `unlearn(rows)`: `self.data = self.data.without(rows)`; the sub-model's training state is rebuilt
  on the retained rows (`finish()` dropped its triples, LightGCN its graph); the subclass's
  `update(rows)` changes the parameters; `finish()` then refreshes what the sub-model derives from
  them (LightGCN's propagated buffers, which `score` reads: without the refresh it would score M0).
  Rebuild, update and refresh are timed; nothing else is. An empty request changes nothing and
  counts 0 of everything.
- `score` / `user_vectors`: the sub-model's.

A subclass sets `submodels` (the accepted sub-model names; None: every epoch-trained one) and
`defaults`, and writes one hook:

    update(rows: np.ndarray) -> dict

`rows` index `self.data.rows` (F of this request; `self.data` no longer retains them, `self.before`
still does). The sub-model `self.model` is prepared on the retained rows, in eval mode, its
parameters requiring gradients. The returned report has three kinds of entries:

- counts in `summed` (`hvps`, `solver_iters`, `steps`, `epochs`, `rows_touched`, ...) become
  `unlearn.<name>` summed over requests (`UnlearnCost.extra`) and `unlearn.<name>.per_request`;
- a `Span` under `<part>_s` (e.g. `grad_s`, `solve_s`) becomes `unlearn.<part>_s` / `_cpu_s`, summed;
- anything else (`residual`, `converged`, `negative_curvature`, `damping`, `grad_norm_before`, ...)
  is solver health: `unlearn.<name>.per_request`, one entry per request (None where absent).

`step_norm` (||theta_after - theta_before||) and `params_touched` (entries changed) are measured by
the base outside the timed region unless the report gives them. Every key must be declared
(`KEYS.declare` in the module that reports it); an undeclared one is a ValueError.

Helpers for subclasses (all deterministic on CPU):

- `generator(stream)`: a torch generator seeded by (seed, "approx", stream, request number),
  shared by every method of the family, so two methods drawing the same stream draw alike;
- `retained_sample(k, gen)`: k retained rows (indices into `data.rows`), ascending;
- `batches_of(rows, gen, batch_size=None, passes=1)`: the sub-model's own batches over exactly
  `rows`, negatives rejected against those rows' and the retained rows' positives;
- `loss_fn(batch)`: the sub-model's training loss with its regulariser on `batch`, in eval mode,
  as a function of a {name: tensor} parameter dict (names missing from it keep the module's
  own); differentiable twice (`torch.autograd.grad(..., create_graph=True)`);
- `parameters()`, `flatten(tensors)`, `unflatten(vector, like)`: the trainable parameters by name,
  and a dict of tensors as one vector and back;
- `init_draw(gen)`: a fresh draw of the parameters from the sub-model's own initialisation;
- `prepared_on(data)`: the sub-model prepared on another TrainSet for the duration of a `with`.

The helpers live in `helpers.py` (the `SubclassHelpers` mixin), the family's record keys in `keys.py`.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from ...data.interactions import TrainSet
from ...errors import ConfigError
from ...metrics.keys import KEYS
from ...metrics.timing import Span, clock
from ...models.base import EpochTrainedModel
from ...registry import SUBMODELS
from ...runtime import CPU
from ...seeding import derive_seed
from ..base import Method
from ..costs import FitCost, UnlearnCost
from .helpers import SubclassHelpers

# counts a request reports that are summed over the stream (and listed per request)
SUMMED = ("hvps", "solver_iters", "steps", "epochs", "rows_touched", "params_touched")
# what the base measures after each update, outside the timed region
MEASURED = ("step_norm", "params_touched")


class _Allowed:
    """`allowed` computed from the class's `submodels` when read, so that sub-models registered by
    plugins count too."""

    def __get__(self, obj, owner):
        return {"partitioner": ["none"], "aggregator": ["none"], "submodel": owner.accepted_submodels()}


class ApproximateMethod(SubclassHelpers, Method):
    """Base of the approximate methods; the module docstring is its contract."""

    family = "approximate"
    builds_exact_replica = False
    partitioner = None
    submodels: tuple[str, ...] | None = None  # accepted sub-models; None: every EpochTrainedModel
    summed = SUMMED
    defaults: dict = {}
    allowed = _Allowed()

    @classmethod
    def accepted_submodels(cls) -> list[str]:
        if cls.submodels is not None:
            return list(cls.submodels)
        return [n for n in SUBMODELS.names() if issubclass(SUBMODELS.get(n), EpochTrainedModel)]

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        unknown = sorted(set(self.cfg) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"method={self.registered_name} has no setting {', '.join(unknown)}. "
                f"Valid: {', '.join(sorted(self.defaults))}."
            )
        self.cfg = {**self.defaults, **self.cfg}
        self.model = None
        self.before: TrainSet | None = None  # the data as the current request found it
        self._requests: list[dict] = []

    # -- fit, score ---------------------------------------------------------------------
    def model_seed(self) -> int:
        return derive_seed(self.seed, "shard", 0)  # what `retrain` (one shard, k = 0) uses

    def new_submodel(self):
        return SUBMODELS.get(self.spec["submodel"]["name"])(
            self.data.n_users, self.data.n_items, self.spec["submodel"], runtime=self.runtime
        )

    def fit(self, data: TrainSet) -> FitCost:
        from .m0_cache import fit_or_load

        self.data = data
        self._requests = []
        info, spent, cached = fit_or_load(self, data)  # M0: retrain's fit, shared by the family
        return FitCost.one_model(spent, info.epochs, {"m0_cached": int(cached)})

    def score(self, users):
        return self.model.score(users)

    def user_vectors(self, users):
        from ...aggregate.base import shard_user_vectors

        vecs = shard_user_vectors([self.model], users)
        return None if vecs is None else {"": vecs[0]}

    # -- unlearning ---------------------------------------------------------------------
    @abstractmethod
    def update(self, rows: np.ndarray) -> dict:
        """Move the parameters for the request `rows`; returns the request's report."""

    def unlearn(self, rows) -> UnlearnCost:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:  # nothing to forget: nothing is touched, no time is spent
            self._requests.append({"step_norm": 0.0})
            return UnlearnCost(seconds=Span(), extra={})
        m = self.model
        start = self.flatten(self.parameters()).detach().clone()
        self.before, self.data = self.data, self.data.without(rows)
        self.runtime.sync()
        t0 = clock()
        if hasattr(m, "prepare"):  # an epoch-trained model's training state of the retained rows
            m.prepare(self.data)  # (ALS has none: the influence engine reads its cells from the rows)
        m._gen = self.generator("model")  # any draw the sub-model makes itself
        m.eval()
        m.requires_grad_(True)
        self.runtime.sync()
        t1 = clock()
        report = dict(self.update(rows) or {})
        m.requires_grad_(False)
        m.zero_grad(set_to_none=True)
        self.runtime.sync()
        t2 = clock()
        if hasattr(m, "finish"):
            m.finish()  # LightGCN: propagate on the retained graph into its buffers
        m.eval()
        self.runtime.sync()
        t3 = clock()
        delta = self.flatten(self.parameters()).detach() - start
        measured = {"step_norm": float(delta.double().norm()), "params_touched": int((delta != 0).sum())}
        report = {**measured, **report}
        report.update({"prepare_s": t1 - t0, "update_s": t2 - t1, "refresh_s": t3 - t2})
        self._check_keys(report)
        self._requests.append(report)
        extra = {k: v for k, v in report.items() if isinstance(v, Span) or k in self.summed}
        return UnlearnCost(seconds=t3 - t0, extra=extra)

    def _check_keys(self, report: dict) -> None:
        for k, v in report.items():
            key = f"unlearn.{k}" if isinstance(v, Span) else f"unlearn.{k}.per_request"
            if KEYS.get(key) is None:
                raise ValueError(f"method {self.registered_name} reports '{k}', but no module declares {key}")

    def describe(self) -> dict:
        out = super().describe()
        names = sorted({k for r in self._requests for k, v in r.items() if not isinstance(v, Span)})
        for k in names:  # a count a request did not report is 0 there; a health value, None
            missing = 0 if k in self.summed else None
            out[f"unlearn.{k}.per_request"] = [_plain(r.get(k, missing)) for r in self._requests]
        return out


def _plain(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else float(v)
    return v


from . import keys  # noqa: E402,F401  (the record keys the family reports, declared on import)
