"""One command per paper table: run the table's experiment sweep, then render the table.

    python -m benchmarks.table receraser_utility [results_dir=DIR] [records=FILE.jsonl] [extra Hydra overrides...]

Runs already done are skipped by the runner, so re-running only renders. A choice of a config
group the table filters on (`dataset=ml100k`, `submodel=wmf`: e.g. to try a paper's protocol on a
smaller dataset) also points the table at those runs. With `records=FILE.jsonl` (e.g.
docs/results/NAME.jsonl) the results directory is first seeded with the file's records (runs
recorded there are skipped), the table's records are merged back into it after the sweep, and the
table is rendered from the file alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import reference, tracking
from .report import SPEC_DIR, load_spec, narrowing, report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.yaml")))
    usage = (
        f"usage: python -m benchmarks.table NAME [results_dir=DIR] [records=FILE.jsonl] [Hydra overrides ...]\n\n"
        f"Runs the sweep of paper table NAME (runs already recorded are skipped), then renders it into\n"
        f"DIR/tables (default DIR: results). records=FILE.jsonl seeds DIR with a committed record file,\n"
        f"merges the new records back into it and renders from it. Overrides go to every run of the\n"
        f"sweep (e.g. runtime=gpu, seed=0); a choice of an axis the table filters on (dataset=ml100k)\n"
        f"also narrows the table to it.\n\nTables: {names}"
    )
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or "=" in argv[0]:
        print(usage, file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    spec = load_spec(name)
    results_dir = next((a.split("=", 1)[1] for a in rest if a.startswith("results_dir=")), "results")
    jsonl = next((Path(a.split("=", 1)[1]) for a in rest if a.startswith("records=")), None)
    overrides = [a for a in rest if not a.startswith(("results_dir=", "records="))]
    where = narrowing(spec, overrides)
    if jsonl is not None:
        records = reference.read(jsonl)
        if records.bad:
            print(records.warning(jsonl), file=sys.stderr)
        print(
            f"{jsonl}: {len(records.by_id)} record(s), {reference.seed(Path(results_dir), records)} seeded "
            f"into {results_dir}/runs",
            file=sys.stderr,
        )
    experiments = spec["experiment"] if isinstance(spec["experiment"], list) else [spec["experiment"]]
    rc = 0
    try:
        for experiment in experiments:  # a table may gather several sweeps
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.run",
                "-m",
                f"experiment={experiment}",
                f"results_dir={results_dir}",
                *overrides,
            ]
            print("+", " ".join(cmd), file=sys.stderr)
            if subprocess.run(cmd).returncode != 0:
                rc = 1
                break
    finally:  # what the sweep finished is kept, even when it failed or was interrupted
        if jsonl is not None:
            print(reference.export(Path(results_dir), jsonl, name, where), file=sys.stderr)
    if rc:
        return rc
    if jsonl is not None:
        paths = reference.render(reference.read(jsonl), name, where, Path(results_dir))
    else:
        paths = report(results_dir, table=name, where=where)
    for path in paths:
        print(path)
    tracked = tracking_config(overrides, results_dir)
    if tracked:
        print(f"logged the rendered files to MLflow run {tracking.log_tables(tracked, name, paths)}", file=sys.stderr)
    return 0


def tracking_config(overrides: list[str], results_dir: str) -> dict | None:
    """The composed `tracking` node where the overrides ask for tracking=mlflow, else None."""
    chosen = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in ("tracking",) or o.startswith("tracking.")]
    if "tracking=mlflow" not in chosen:
        return None
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("benchmarks.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*chosen, f"results_dir={results_dir}"])
    return OmegaConf.to_container(cfg.tracking, resolve=True)


if __name__ == "__main__":
    sys.exit(main())
