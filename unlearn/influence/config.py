"""What an influence step is asked to do (`InfluenceConfig`: block, form, solver, damping and
their limits, checked before any training), and the report of a request that moved nothing."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from . import solvers
from .blocks import check_block
from .objective import decomposable

FORMS = ("removal", "newton_retained")


@dataclass
class InfluenceConfig:
    block: str = "users"
    form: str = "removal"
    solver: str = "auto"  # auto: direct for a block-diagonal users block, else cg
    damping: float = 0.01  # relative to the block's mean Hessian diagonal
    damping_probes: int = 4  # Hutchinson probes for that mean (iterative solvers)
    damping_growth: float = 10.0  # the damping's factor per retry on negative curvature or divergence
    damping_retries: int = 5  # retries at most (0: report the indefinite solve as it is)
    tol: float = 1e-6  # relative residual
    max_iter: int = 100
    lissa_scale: float = 10.0
    adam_lr: float = 1e-3
    hops: int = 1  # khop's neighbourhood radius
    spillover: float = 0.01  # LightGCN removal: degree drop above which a node's rows enter v

    @classmethod
    def from_cfg(cls, cfg: dict) -> "InfluenceConfig":
        names = cls.__dataclass_fields__
        out = cls(**{k: cfg[k] for k in names if k in cfg})
        out.check()
        return out

    def check(self) -> None:
        check_block(self.block, self.hops)
        if self.form not in FORMS:
            raise ConfigError(f"Unknown method.form '{self.form}'. Valid: {', '.join(FORMS)}.")
        if self.solver not in ("auto",) + solvers.SOLVERS:
            raise ConfigError(f"Unknown method.solver '{self.solver}'. Valid: auto, {', '.join(solvers.SOLVERS)}.")
        for name in ("damping", "tol", "spillover"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"method.{name} must be >= 0, got {getattr(self, name)}.")
        if not float(self.damping_growth) > 1:
            raise ConfigError(f"method.damping_growth must be > 1, got {self.damping_growth}.")
        for name in ("max_iter", "damping_probes", "damping_retries"):
            if isinstance(getattr(self, name), bool) or int(getattr(self, name)) < (1 if name == "max_iter" else 0):
                raise ConfigError(
                    f"method.{name} must be a {'positive' if name == 'max_iter' else 'non-negative'} "
                    f"integer, got {getattr(self, name)}."
                )
        if not float(self.lissa_scale) > 0 or not float(self.adam_lr) > 0:
            raise ConfigError("method.lissa_scale and method.adam_lr must be > 0.")

    def solver_for(self, kind: str) -> str:
        """The solver this block uses on a sub-model of this kind (ConfigError where `direct` cannot)."""
        per_user = self.block == "users" and decomposable(kind)
        if self.solver == "auto":
            return "direct" if per_user else "cg"
        if self.solver == "direct" and not per_user:
            raise ConfigError(
                "method.solver=direct needs block=users on a sub-model whose users do not interact "
                f"(not {kind}: its Hessian is not block-diagonal); use cg, lissa or adam."
            )
        return self.solver


def empty_report() -> dict:
    """The report of a request that moved nothing."""
    return {
        "hvps": 0,
        "solver_iters": 0,
        "residual": 0.0,
        "converged": True,
        "negative_curvature": False,
        "diverged": False,
        "rows_touched": 0,
        "params_touched": 0,
        "damping": 0.0,
        "damping_retries": 0,
        "step_norm": 0.0,
        "block_users": 0,
        "block_items": 0,
        "reinit_users": 0,
    }
