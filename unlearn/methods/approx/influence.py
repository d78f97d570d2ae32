"""Influence-function unlearning: `scif`, `scif_ui` and `ifru`, one engine (`unlearn.influence`)
with three presets of the block it moves.

- `scif` (Li et al., SCIF): the users block, an exact d x d solve per user who lost rows;
- `scif_ui`: the users and the items of F, as the IFRU repository's SCIF port moves them;
- `ifru` (Zhang et al., IFRU, ACM TORS 2024): the one-hop neighbourhood of F; on LightGCN the
  right-hand side adds IFRU's spillover term over the retained rows of nodes whose degree fell
  by more than `spillover`.

Each request takes one step, `form: removal` (the papers') or `newton_retained` (see
`unlearn.influence.engine`), from the current parameters. `deleted_users: reinit` gives a user who
lost every row the row the fit drew for it, which is what the retrain oracle holds (its row never
receives a gradient; ALS solves it to 0); `influence` leaves it to the step.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError
from ...influence import InfluenceConfig, InfluenceStep, kind_of
from ...influence.objective import SUBMODELS as INFLUENCE_SUBMODELS
from ...metrics.keys import KEYS
from ...registry import METHODS, SUBMODELS
from ...runtime import CPU
from .base import ApproximateMethod

DELETED_USERS = ("influence", "reinit")
ENGINE = {**{k: v.default for k, v in InfluenceConfig.__dataclass_fields__.items()}, "deleted_users": "influence"}
# what the engine reports that the base does not measure itself (it measures step_norm, params_touched)
REPORTED = (
    "hvps",
    "solver_iters",
    "residual",
    "converged",
    "negative_curvature",
    "diverged",
    "rows_touched",
    "damping",
    "damping_retries",
    "block_users",
    "block_items",
    "reinit_users",
    "grad_s",
    "solve_s",
)


class InfluenceMethod(ApproximateMethod):
    """One influence step per request on the sub-model's own objective (`unlearn.influence`)."""

    submodels = INFLUENCE_SUBMODELS
    defaults = ENGINE

    def __init__(self, spec, runtime=CPU, cache_dir=None):
        super().__init__(spec, runtime, cache_dir)
        self.engine_cfg = InfluenceConfig.from_cfg(self.cfg)
        if self.cfg["deleted_users"] not in DELETED_USERS:
            raise ConfigError(
                f"Unknown method.deleted_users '{self.cfg['deleted_users']}'. Valid: {', '.join(DELETED_USERS)}."
            )
        self.kind = kind_of(SUBMODELS.get(spec["submodel"]["name"]))
        self.engine_cfg.solver_for(self.kind)  # refuses a solver the block cannot take, before training
        self._step: InfluenceStep | None = None
        self._initial: torch.Tensor | None = None

    def fit(self, data):
        cost = super().fit(data)
        self._step = InfluenceStep(self.model, self.kind, self.engine_cfg, sync=self.runtime.sync)
        self._initial = None
        return cost

    def initial_user_rows(self, users: torch.Tensor) -> torch.Tensor:
        """The rows the fit started these users from, which a user without rows keeps in a retrain
        (ALS instead solves such a user to 0 in its first sweep)."""
        if self._initial is None:
            if self.kind == "als":
                self._initial = torch.zeros_like(self.model.user_factors.detach())
            else:
                gen = torch.Generator(device="cpu")
                gen.manual_seed(int(self.model_seed()))  # as `begin_fit` seeds the fit's generator
                self._initial = self.init_draw(gen)["user_emb"].detach()
        return self._initial[users]

    def update(self, rows: np.ndarray) -> dict:
        reinit = self.initial_user_rows if self.cfg["deleted_users"] == "reinit" else None
        report = self._step(self.data.rows, self.before.kept_mask, rows, self.generator("influence"), reinit)
        return {k: report[k] for k in REPORTED if k in report}

    def describe(self) -> dict:
        out = super().describe()
        out["unlearn.solver"] = self.engine_cfg.solver_for(self.kind)  # `auto` resolved
        return out


@METHODS.register("scif")
class SCIF(InfluenceMethod):
    """The users block: each user who lost rows moves by an exact d x d solve."""

    defaults = {**ENGINE, "block": "users"}


@METHODS.register("scif_ui")
class SCIFUserItem(InfluenceMethod):
    """The users and the items of F, solved together (conjugate gradients by default)."""

    defaults = {**ENGINE, "block": "users_items"}


@METHODS.register("ifru")
class IFRU(InfluenceMethod):
    """IFRU's one-hop neighbourhood of F, with the LightGCN spillover term."""

    defaults = {**ENGINE, "block": "khop", "hops": 1}


for _k, _doc in {
    "diverged": "1 where the solver diverged (LiSSA's residual grew past |v|, or a non-finite step)",
    "block_users": "users whose rows the step moved",
    "block_items": "items whose rows the step moved",
    "reinit_users": "users who lost every row and took the row the fit drew for them",
}.items():
    KEYS.declare(
        f"unlearn.{_k}.per_request", _k.replace("_", " "), sub="per request", group="other", doc=f"{_doc}, per request"
    )
KEYS.declare("unlearn.solver", "influence solver", group="identity", doc="the solver of the damped Newton system")
