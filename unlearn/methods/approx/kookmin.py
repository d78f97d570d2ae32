"""Kookmin, as ERASE (arXiv 2603.08341) runs it in its released trainer.

1. Gradients of the sub-model's loss on F's rows (g_F) and on retained rows (g_R): F's users'
   retained rows, then uniformly sampled retained rows up to S = `retain_sample` x |F| rows. As
   ERASE computes them: each the sum over the sub-model's batches of its rows of the gradient of
   the batch's loss, divided by S.
2. Per parameter tensor, the `init_rate` share of entries (at least one) with the smallest
   |g_R - g_F| is re-initialised. Entries that neither batch reaches tie at 0 (embedding rows of
   users and items outside both batches); ties are broken by a seeded random order.
   `reinit: submodel` draws the new values from the sub-model's own initialisation;
   `reinit: kaiming` is ERASE's rule (kaiming-uniform with a = sqrt 5 for 2-d tensors, N(0, 0.02^2)
   otherwise). Both from the request's `init` generator.
3. Fine-tuning on `rows_per_forget` x |F| retained rows (the retained stream `finetune` reads),
   with a fresh optimiser at `boost_factor` times the lr (`boost: lr`, the default: "10x the lr");
   `boost: reinit_grad` instead multiplies only the re-initialised entries' gradient by it, as
   ERASE's code does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import ConfigError
from ...registry import METHODS
from ...runtime import CPU
from .finetune import GradientMethod

REINIT = ("submodel", "kaiming")
BOOST = ("reinit_grad", "lr")


def kaiming_draw(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """ERASE's re-initialisation of one tensor."""
    out = torch.empty(like.shape, dtype=like.dtype)  # drawn on the CPU generator, then moved
    if like.dim() == 2:
        torch.nn.init.kaiming_uniform_(out, a=math.sqrt(5), generator=gen)
    else:
        out.normal_(0.0, 0.02, generator=gen)
    return out.to(like.device)


@METHODS.register("kookmin")
class Kookmin(GradientMethod):
    defaults = {
        "init_rate": 0.01,
        "retain_sample": 128,
        "rows_per_forget": 16,
        "reinit": "submodel",
        "boost": "lr",
        "boost_factor": 10.0,
        "lr_scale": 1.0,
    }

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        c = self.cfg
        if not 0.0 < float(c["init_rate"]) <= 1.0:
            raise ConfigError(f"method.init_rate must lie in (0, 1] (got {c['init_rate']}).")
        for key in ("retain_sample", "rows_per_forget", "boost_factor"):
            if not float(c[key]) > 0:
                raise ConfigError(f"method.{key} must be > 0 (got {c[key]}).")
        if c["reinit"] not in REINIT:
            raise ConfigError(f"Unknown method.reinit '{c['reinit']}'. Valid: {', '.join(REINIT)}.")
        if c["boost"] not in BOOST:
            raise ConfigError(f"Unknown method.boost '{c['boost']}'. Valid: {', '.join(BOOST)}.")

    def gradient(self, rows: np.ndarray, gen: torch.Generator, scale: float) -> dict[str, torch.Tensor]:
        """ERASE's gradient of a set of rows: the sum over the sub-model's batches of `rows` of the
        gradient of each batch's loss, divided by `scale`."""
        params = self.parameters()
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        for batch in self.batches_of(rows, gen) if len(rows) else []:
            grads = torch.autograd.grad(self.model.loss(batch), list(params.values()), allow_unused=True)
            for n, g in zip(params, grads):
                if g is not None:
                    total[n] += g
        return {n: g / scale for n, g in total.items()}

    def retained_rows(self, rows: np.ndarray, k: int, gen: torch.Generator) -> np.ndarray:
        """The retained rows of F's users (ERASE's "clean forget" rows), then a uniform sample of
        the other retained rows up to `k` rows in all."""
        kept = self.data.row_index
        own = np.isin(self.data.rows.users[kept], np.unique(self.data.rows.users[rows]))
        others = kept[~own]
        more = max(0, k - int(own.sum()))
        pick = others[torch.randperm(len(others), generator=gen)[:more].numpy()] if more else others[:0]
        return np.sort(np.concatenate([kept[own], pick]))

    def masks(self, g_r: dict, g_f: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Per tensor: the entries with the smallest |g_R - g_F|, ties in a seeded random order."""
        out = {}
        for name, gr in g_r.items():
            d = (gr - g_f[name]).abs().flatten()
            k = max(1, int(d.numel() * float(self.cfg["init_rate"])))
            order = torch.randperm(d.numel(), generator=gen).to(d.device)
            pick = order[torch.argsort(d[order], stable=True)[:k]]
            mask = torch.zeros(d.numel(), dtype=torch.bool, device=d.device)
            mask[pick] = True
            out[name] = mask.view_as(gr)
        return out

    def update(self, rows: np.ndarray) -> dict:
        n_f = len(rows)
        gen = self.generator("kookmin")
        k = math.ceil(float(self.cfg["retain_sample"]) * n_f)
        g_f = self.gradient(rows, gen, k)
        sample = self.retained_rows(rows, k, gen)
        g_r = self.gradient(sample, gen, k)
        masks = self.masks(g_r, g_f, gen)
        init = self.generator("init")
        params = self.parameters()
        fresh = self.init_draw(init) if self.cfg["reinit"] == "submodel" else None
        with torch.no_grad():
            for name, p in params.items():
                new = fresh[name].to(p.device) if fresh is not None else kaiming_draw(p, init)
                p[masks[name]] = new[masks[name]]
        factor = float(self.cfg["boost_factor"])
        boost_lr = self.cfg["boost"] == "lr"
        opt = self.optimizer(float(self.cfg["lr_scale"]) * (factor if boost_lr else 1.0))

        def boost_grads():
            for name, p in params.items():
                if p.grad is not None:
                    p.grad[masks[name]] *= factor

        report = self.descend_rows(
            opt, math.ceil(float(self.cfg["rows_per_forget"]) * n_f), None if boost_lr else boost_grads
        )
        report["rows_touched"] += n_f + len(sample)
        report["reinitialised"] = int(sum(int(m.sum()) for m in masks.values()))
        return report


from ...metrics.keys import KEYS  # noqa: E402

KEYS.declare(
    "unlearn.reinitialised.per_request",
    "entries re-initialised",
    sub="per request",
    group="other",
    doc="parameter entries Kookmin re-initialised, per request",
)
