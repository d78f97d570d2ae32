"""recunlearn: a reproducible benchmark library for recommendation unlearning (no Hydra here)."""

from . import aggregate, data, methods, metrics, models, partition  # noqa: F401  (fill the registries)
from .plugins import import_submodules
from .registry import AGGREGATORS, DATASETS, METHODS, PARTITIONERS, SPLITS, SUBMODELS  # noqa: F401

import_submodules(metrics.__name__, metrics.__path__)  # the probes (eval.probes) and their keys
from . import lifecycle  # noqa: E402,F401  (declares the run's own keys: the oracle's seconds, speedup)

__version__ = "0.1.0"
