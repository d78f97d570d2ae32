import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("UNLEARN_DATA_DIR", str((ROOT.parent / "shared" / "datasets").resolve()))
torch.set_num_threads(1)


@pytest.fixture
def synthetic():
    from unlearn.data import load_dataset

    return load_dataset({"name": "synthetic", "loader": "synthetic",
                         "generator": {"n_users": 120, "n_items": 80, "mean_per_user": 15}})


@pytest.fixture
def fast_bpr():
    return {"name": "bpr", "dim": 16, "epochs": 8, "patience": 3, "lr": 0.01, "batch_size": 256}
