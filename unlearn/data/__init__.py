from ..plugins import import_submodules

import_submodules(__name__, __path__)  # registers every loader and split in this package

from .interactions import Dataset, Interactions, TrainSet  # noqa: E402,F401
from .load import load_dataset  # noqa: E402,F401
