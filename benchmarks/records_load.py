"""Result files -> one frame of the successful records, and what was left out of it (failed runs and
result files that could not be read), so a table can say what it does not show."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from unlearn.metrics.exposure import LIFT_FLOOR

MIN_PAIRS = 100  # an MIA cell resting on fewer pairs a side is flagged (dagger)
FEW_PAIRS = "mia_few_pairs"  # the loader's flag column: 1 where a record's MIA rests on fewer pairs
# a per-request health list read as the share of a stream's requests where it held, so a table can
# say that an approximate method left the model as it was (each key declared with the method family)
SHARES = {
    "unlearn.unchanged_share": ("unlearn.params_touched.per_request", lambda v: v == 0),
    "unlearn.converged_share": ("unlearn.converged.per_request", bool),
    "unlearn.damped_share": ("unlearn.damping_retries.per_request", lambda v: v > 0),
}


@dataclass
class LeftOut:
    """Records a table cannot show: runs that failed (their result.json holds the error) and result
    files that are not a JSON record (a run killed while writing, a file edited by hand)."""

    failed: int = 0
    unreadable: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.failed or self.unreadable)

    def note(self) -> str:
        """One sentence for a caption and for stderr; empty when nothing was left out."""
        parts = []
        if self.failed:
            parts.append(f"{self.failed} failed run{'s' * (self.failed != 1)} (the error is in its result.json)")
        if self.unreadable:
            n = len(self.unreadable)
            shown = ", ".join(str(p) for p in self.unreadable[:3]) + (", ..." if n > 3 else "")
            parts.append(f"{n} unreadable result file{'s' * (n != 1)} ({shown})")
        return f"Left out: {' and '.join(parts)}." if parts else ""


def load_records(results_dir: str | Path) -> tuple[pd.DataFrame, LeftOut]:
    """(the ok records as a frame, what was left out). Lists and dicts become JSON text; a
    record-level interval `<key>.ci95` = [low, high] also becomes two numbers, `<key>.ci95.low` and
    `<key>.ci95.high`; a per-request health list in SHARES also becomes the share where it held; a
    residual promotion whose attack lifted its targets by less than LIFT_FLOOR is read as None, as
    the run itself records it since the floor exists."""
    rows, left = [], LeftOut()
    root = Path(results_dir)
    for path in sorted(root.glob("runs/*/result.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            rec = None
        if not isinstance(rec, dict):
            left.unreadable.append(path.relative_to(root))
            continue
        if rec.get("status") != "ok":
            left.failed += 1
            continue
        row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in rec.items()}
        for k, v in rec.items():
            if k.endswith(".ci95") and isinstance(v, list) and len(v) == 2:
                row[f"{k}.low"], row[f"{k}.high"] = v
        for key, (source, held) in SHARES.items():
            values = [v for v in rec.get(source) or [] if v is not None]
            if values:
                row[key] = sum(1 for v in values if held(v)) / len(values)
        for key, lift in rec.items():  # records written before the floor existed read by the same rule
            if key.startswith("attack_lift@") and isinstance(lift, (int, float)) and lift < LIFT_FLOOR:
                row[key.replace("attack_lift@", "residual_promotion@")] = None
        if "mia_pairs" in rec:
            row[FEW_PAIRS] = float(rec["mia_pairs"] < MIN_PAIRS)
        rows.append(row)
    return pd.DataFrame(rows), left


def apply_filter(df: pd.DataFrame, flt: dict | None) -> pd.DataFrame:
    """The records whose keys take the filter's values (a value or a list of values per key)."""
    for key, want in (flt or {}).items():
        if key not in df:
            return df.iloc[0:0]
        values = want if isinstance(want, list) else [want]
        df = df[df[key].isin(values)]
    return df
