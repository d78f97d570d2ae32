"""The units a deletion request or a partition counts in: users, items or interactions (rows)."""
from __future__ import annotations

import numpy as np

from .interactions import Interactions

UNITS = ("user", "interaction", "item")


def unit_ids(unit: str, rows: Interactions) -> np.ndarray:
    """The unit id of every row: its user, its item, or the row itself."""
    if unit == "user":
        return rows.users
    if unit == "item":
        return rows.items
    return np.arange(len(rows))


def n_unit_ids(unit: str, n_users: int, n_items: int, rows: Interactions) -> int:
    """Size of the unit id universe."""
    return {"user": n_users, "item": n_items}.get(unit, len(rows))
