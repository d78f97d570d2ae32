"""The influence-function engine: Hessian-vector products of a sub-model's own training objective,
solvers for the damped Newton system, parameter blocks, and the step that ties them together
(`InfluenceStep`). The methods built on it live in `unlearn.methods.approx.influence`."""

from .blocks import BLOCKS, Block, select
from .config import FORMS, InfluenceConfig, empty_report
from .engine import InfluenceStep
from .hvp import HessianOperator
from .objective import SUBMODELS, Objective, kind_of
from .solvers import SOLVERS, SolveReport, adam, cg, direct, lissa

__all__ = [
    "BLOCKS",
    "FORMS",
    "SOLVERS",
    "SUBMODELS",
    "Block",
    "HessianOperator",
    "InfluenceConfig",
    "InfluenceStep",
    "Objective",
    "SolveReport",
    "adam",
    "cg",
    "direct",
    "empty_report",
    "kind_of",
    "lissa",
    "select",
]
