import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("UNLEARN_DATA_DIR", str((ROOT.parent / "shared" / "datasets").resolve()))
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Every slow test states its own pytest timeout (its subprocesses run for many minutes)."""
    bare = [item.nodeid for item in items if item.get_closest_marker("slow") and not item.get_closest_marker("timeout")]
    if bare:
        raise pytest.UsageError(f"slow tests need @pytest.mark.timeout(...): {', '.join(bare)}")


@pytest.fixture(autouse=True)
def _subprocess_budget(request):
    """The test's pytest timeout, which `tests.helpers.cli` checks its subprocess timeouts against."""
    from . import helpers

    helpers.BUDGET.clear()
    helpers.BUDGET.update(limit=_timeout(request), used=0)
    yield
    helpers.BUDGET.clear()


def _timeout(request) -> float | None:
    """The test's timeout: its `timeout` marker, else the `timeout` ini setting (None: none set)."""
    marker = request.node.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    else:
        try:
            value = request.config.getini("timeout")
        except ValueError:  # pytest-timeout not installed: the setting is unknown
            value = None
    return float(value) if value not in (None, "") else None


@pytest.fixture(scope="module")
def hydra_conf():
    """Hydra initialised once for a test module; `tests.helpers.compose_cfg` composes in it."""
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield


@pytest.fixture
def synthetic():
    from unlearn.data import load_dataset

    return load_dataset(
        {"name": "synthetic", "loader": "synthetic", "generator": {"n_users": 120, "n_items": 80, "mean_per_user": 15}}
    )


@pytest.fixture
def fast_bpr():
    return {"name": "bpr", "dim": 16, "epochs": 8, "patience": 3, "lr": 0.01, "batch_size": 256}
