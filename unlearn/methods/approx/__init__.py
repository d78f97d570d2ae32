"""The approximate-unlearning family: one sub-model, fitted as `retrain` fits it, whose parameters
unlearning updates from their current values (`base.ApproximateMethod`). Every module here is
imported, so its methods register."""

from ...plugins import import_submodules

import_submodules(__name__, __path__)
