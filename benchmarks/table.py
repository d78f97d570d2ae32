"""One command per paper table: run the table's experiment sweep, then render the table.

    python -m benchmarks.table receraser_utility [results_dir=DIR] [extra Hydra overrides...]

Runs already done are skipped by the runner, so re-running only renders. A choice of a config
group the table filters on (`dataset=ml100k`, `submodel=wmf`: e.g. to try a paper's protocol on a
smaller dataset) also points the table at those runs."""
from __future__ import annotations

import subprocess
import sys

from .report import SPEC_DIR, load_spec, narrowing, report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or "=" in argv[0]:
        names = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.yaml")))
        print(f"usage: python -m benchmarks.table NAME [results_dir=DIR] [overrides]. Tables: {names}", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    spec = load_spec(name)
    results_dir = next((a.split("=", 1)[1] for a in rest if a.startswith("results_dir=")), "results")
    overrides = [a for a in rest if not a.startswith("results_dir=")]
    experiments = spec["experiment"] if isinstance(spec["experiment"], list) else [spec["experiment"]]
    for experiment in experiments:  # a table may gather several sweeps
        cmd = [sys.executable, "-m", "benchmarks.run", "-m", f"experiment={experiment}",
               f"results_dir={results_dir}", *overrides]
        print("+", " ".join(cmd), file=sys.stderr)
        if subprocess.run(cmd).returncode != 0:
            return 1
    for path in report(results_dir, table=name, where=narrowing(spec, overrides)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
