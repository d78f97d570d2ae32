"""recunlearn: a reproducible benchmark library for recommendation unlearning (no Hydra here)."""
from . import aggregate, data, methods, metrics, models, partition  # noqa: F401  (fill the registries)
from .registry import AGGREGATORS, DATASETS, METHODS, PARTITIONERS, SPLITS, SUBMODELS  # noqa: F401

__version__ = "0.1.0"
