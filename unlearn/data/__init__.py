from .interactions import Dataset, Interactions, TrainSet  # noqa: F401
from .load import load_dataset  # noqa: F401
