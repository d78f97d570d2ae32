"""Reference records: the runs behind a committed table, one compact JSON line per successful run
(`docs/results/<table>.jsonl`), accumulated over commits and machines.

A run id hashes the configuration without where and how it was launched, so the same run has the
same id on every machine. Seeding a results directory with the committed records makes the
runner's skip-if-done skip every run recorded anywhere; exporting merges back what this machine
added (a newer record of a run id replaces the older one, nothing else is dropped); rendering from
the records alone goes through `report()`, so a table looks the same wherever its runs ran."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from unlearn import io

from .records import load_result
from .records_load import apply_filter, load_records  # the reporter's own loading and filtering

DROPPED = ("traceback",)
KEPT = ("unlearn_s.per_request",)  # a stream's latency per request: short, and what its percentiles rest on
LONG = 64  # a list longer than this is a per-epoch or per-sweep trace, which no table reads
_TRACE = re.compile(r"_trace(\.|$)")


def compact(record: dict) -> dict | None:
    """The record as committed: None unless it succeeded; without the traceback and the long
    lists no table reads (convergence traces), so a table's file stays a few MB at most."""
    if not isinstance(record, dict) or record.get("status") != "ok" or not isinstance(record.get("run_id"), str):
        return None
    return {k: v for k, v in record.items() if not _bulky(k, v)}


def _bulky(key: str, value) -> bool:
    if key in DROPPED:
        return True
    if key in KEPT or key.startswith("cfg.") or not isinstance(value, (list, dict)):
        return False
    return bool(_TRACE.search(key)) or len(value) > LONG


def line(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def newer(a: dict, b: dict) -> bool:
    """Whether record `a` replaces `b` of the same run id: started later (or at the same time)."""
    return str(a.get("started_at") or "") >= str(b.get("started_at") or "")


@dataclass
class Records:
    """A table's records by run id, and what a file held that was not a record."""

    by_id: dict[str, dict] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)

    def merge(self, records) -> tuple[int, int]:
        """Adds `records` (compacted); returns (added, replaced)."""
        added = replaced = 0
        for rec in records:
            rec = compact(rec)
            if rec is None:
                continue
            old = self.by_id.get(rec["run_id"])
            if old is None:
                added += 1
            elif line(old) != line(rec) and newer(rec, old):  # as text: NaN is not equal to itself
                replaced += 1
            else:
                continue
            self.by_id[rec["run_id"]] = rec
        return added, replaced

    def text(self) -> str:
        return "".join(line(self.by_id[rid]) + "\n" for rid in sorted(self.by_id))

    def values(self) -> list[dict]:
        return [self.by_id[rid] for rid in sorted(self.by_id)]

    def warning(self, path: Path) -> str:
        """One line naming the lines of `path` that were left out ("" when none)."""
        if not self.bad:
            return ""
        shown = "; ".join(self.bad[:3]) + ("; ..." if len(self.bad) > 3 else "")
        return (
            f"warning: {path}: {len(self.bad)} line(s) are not successful run records and were left out "
            f"(dropped when the file is next written): {shown}"
        )


def read(path: Path) -> Records:
    """The records of a JSONL file (none when it is missing). A line that is not a successful
    record (a merge's conflict markers, a truncated write, a failed run) is counted in `bad`, not
    fatal; two lines of one run id keep the newer."""
    out = Records()
    path = Path(path)
    if not path.is_file():
        return out
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except ValueError as exc:
            out.bad.append(f"line {n}: not JSON ({exc.msg})")
            continue
        if compact(rec) is None:
            out.bad.append(f"line {n}: not a successful run record (needs run_id and status ok)")
            continue
        out.merge([rec])
    return out


def write(path: Path, records: Records) -> bool:
    """Writes the records (sorted by run id, keys sorted) atomically; False when the file already
    held exactly them."""
    path, text = Path(path), records.text()
    if path.is_file() and path.read_text() == text:
        return False
    io.write_text(path, text)
    return True


def local(results_dir: Path) -> dict[str, dict]:
    """The successful records under `<results_dir>/runs/`, by run id."""
    out = {}
    for p in sorted(Path(results_dir).glob("runs/*/result.json")):
        rec = load_result(p)
        if isinstance(rec, dict) and rec.get("status") == "ok" and isinstance(rec.get("run_id"), str):
            out[rec["run_id"]] = rec
    return out


def seed(results_dir: Path, records: Records) -> int:
    """Writes `runs/<run_id>/result.json` for each record the results directory lacks (or holds
    an older or failed result of), so the runner skips it; returns how many were written."""
    have = local(results_dir)
    written = 0
    for rid, rec in records.by_id.items():
        old = have.get(rid)
        if old is not None and (line(compact(old) or {}) == line(rec) or not newer(rec, old)):
            continue
        io.write_json(Path(results_dir) / "runs" / rid / "result.json", rec)
        written += 1
    return written


def table_filter(name: str, where: dict | None) -> dict | None:
    from .report import load_spec, narrowed

    return narrowed(load_spec(name), where).get("filter")


def matching(results_dir: Path, flt: dict | None) -> list[dict]:
    """The successful records under `results_dir` that a table with filter `flt` shows (the
    reporter's own loading and filtering)."""
    df, _ = load_records(results_dir)
    if df.empty or "run_id" not in df:
        return []
    ids = set(apply_filter(df, flt)["run_id"].dropna())
    return [rec for rid, rec in local(results_dir).items() if rid in ids]


def export(results_dir: Path, path: Path, name: str, where: dict | None) -> str:
    """Merges the records under `results_dir` that table `name` (narrowed by `where`) shows into
    the JSONL file `path`; returns a one-line summary."""
    records = read(path)
    added, replaced = records.merge(matching(results_dir, table_filter(name, where)))
    changed = write(path, records) if records.by_id else False
    return f"{path}: {added} new, {replaced} replaced, {len(records.by_id)} record(s) in all" + (
        "" if changed or not records.by_id else " (unchanged)"
    )


def render(records: Records, name: str, where: dict | None, dest: Path) -> list[Path]:
    """Renders table `name` from `records` alone with `report()` and copies what it wrote
    (tables/, figures/) under `dest`; returns the copied paths. Raises SystemExit with one line
    when no record matches the table."""
    from .report import report

    if not records.by_id:
        raise SystemExit(f"error: no records to render table '{name}' from.")
    with tempfile.TemporaryDirectory(prefix="records-") as tmp:
        for rid, rec in records.by_id.items():
            run = Path(tmp) / "runs" / rid
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(rec))
        written = report(tmp, table=name, where=where)
        out = []
        for p in written:
            target = Path(dest) / Path(p).relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_target = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(p, tmp_target)
            tmp_target.replace(target)
            out.append(target)
    return out
