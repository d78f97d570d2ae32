"""The approximate family's helpers for subclasses (listed in `base.py`'s docstring): the request's
generators, retained samples, the sub-model's own batches over given rows, its loss as a function of
its parameters, flattening, fresh initial draws. A mixin of `ApproximateMethod`, apart from the
fit / unlearn flow it serves."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ...data.interactions import TrainSet
from ...seeding import torch_generator
from ...training import NegativeSampler


class _UnionSampler(NegativeSampler):
    """Rejects a negative that is a positive of either sampler."""

    def __init__(self, a: NegativeSampler, b: NegativeSampler):
        self.n_items, self.max_rounds, self.a, self.b = a.n_items, a.max_rounds, a, b

    def is_positive(self, users, items):
        return self.a.is_positive(users, items) | self.b.is_positive(users, items)


def _sampler(model) -> NegativeSampler | None:
    triples = getattr(model, "_triples", None)
    return getattr(model, "_sampler", None) or (triples.sampler if triples is not None else None)


def _set_sampler(model, sampler: NegativeSampler) -> None:
    if getattr(model, "_sampler", None) is not None:
        model._sampler = sampler
    if getattr(model, "_triples", None) is not None:
        model._triples.sampler = sampler


class _LossCall(torch.nn.Module):
    """model.loss(batch) as a forward, for `torch.func.functional_call`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


class SubclassHelpers:
    """What an `ApproximateMethod`'s `update` builds on (reads `model`, `data`, `seed` and the
    request count)."""

    def generator(self, stream: str) -> torch.Generator:
        """The request's generator of `stream`, the same for every method of the family."""
        return torch_generator(self.seed, "approx", stream, len(self._requests))

    def retained_sample(self, k: int, gen: torch.Generator) -> np.ndarray:
        """k retained rows drawn without replacement (all of them when k >= their number), ascending."""
        kept = self.data.row_index
        if k >= len(kept):
            return kept
        return np.sort(kept[torch.randperm(len(kept), generator=gen)[: int(k)].numpy()])

    @contextlib.contextmanager
    def prepared_on(self, data: TrainSet):
        """Inside: the sub-model prepared on `data`; after: its previous prepared state, as it was."""
        m = self.model
        saved = dict(m.__dict__)
        try:
            m.prepare(data)
            yield m
        finally:
            for k in [k for k in m.__dict__ if k not in saved]:
                del m.__dict__[k]
            m.__dict__.update(saved)

    def rows_data(self, rows: np.ndarray) -> TrainSet:
        """`rows` (indices into `data.rows`) as a TrainSet of their own."""
        d = self.data
        return TrainSet(
            d.n_users, d.n_items, d.rows.subset(np.asarray(rows, dtype=np.int64)), d.all_valid, features=d.features
        )

    def batches_of(
        self, rows: np.ndarray, gen: torch.Generator, batch_size: int | None = None, passes: int = 1
    ) -> list[tuple]:
        """The sub-model's own batches (shuffled by `gen`, negatives from `gen`) over exactly `rows`,
        `passes` shuffles of them one after another, `batch_size` rows a batch (None: the
        sub-model's; WMF batches users). Negatives are rejected against the positives of `rows`
        and of the retained rows; the loss is evaluated later, on the retained state (LightGCN
        propagates on the retained graph)."""
        outer = _sampler(self.model)
        cfg = self.model.cfg
        size = cfg["batch_size"]
        with self.prepared_on(self.rows_data(rows)) as m:
            inner = _sampler(m)
            if inner is not None and outer is not None:
                _set_sampler(m, _UnionSampler(inner, outer))
            if batch_size is not None:
                cfg["batch_size"] = int(batch_size)
            try:
                return [b for _ in range(int(passes)) for b in m.batches(gen)]
            finally:
                cfg["batch_size"] = size

    def parameters(self) -> dict[str, torch.Tensor]:
        """The sub-model's parameters by name (in registration order)."""
        return dict(self.model.named_parameters())

    @staticmethod
    def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors.values()]) if tensors else torch.zeros(0)

    @staticmethod
    def unflatten(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out, at = {}, 0
        for name, t in like.items():
            out[name] = vector[at : at + t.numel()].view_as(t)
            at += t.numel()
        if at != len(vector):
            raise ValueError(f"a vector of {len(vector)} entries for parameters of {at}")
        return out

    def loss_fn(self, batch: tuple):
        """J(params) = the sub-model's `loss(batch)` (its regulariser included) in eval mode, with
        `params` ({name: tensor}) in place of the named parameters."""
        call = _LossCall(self.model)
        prefixed = lambda params: {f"model.{k}": v for k, v in params.items()}  # noqa: E731

        def fn(params: dict[str, torch.Tensor]) -> torch.Tensor:
            was = self.model.training
            self.model.eval()
            try:
                return torch.func.functional_call(call, prefixed(params), (batch,))
            finally:
                self.model.train(was)

        return fn

    def init_draw(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """A fresh draw of every parameter from the sub-model's own initialisation (`reset_parameters`
        with `gen`); the parameters themselves are left as they were."""
        m = self.model
        kept = {n: p.detach().clone() for n, p in m.named_parameters()}
        with torch.no_grad():
            m.reset_parameters(gen)
            drawn = {n: p.detach().clone() for n, p in m.named_parameters()}
            for n, p in m.named_parameters():
                p.copy_(kept[n])
        return drawn
