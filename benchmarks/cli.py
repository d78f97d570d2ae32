"""The `recunlearn` command: one entry point for the suite's commands.

    recunlearn run [-m] OVERRIDES...      one run or a sweep (python -m benchmarks.run)
    recunlearn report [KEY=VALUE...]      tables and figures from records (python -m benchmarks.report)
    recunlearn table NAME [OVERRIDES...]  a paper table's sweep, then the table (python -m benchmarks.table)
    recunlearn paper-tables [OPTIONS]     the reference tables (python -m benchmarks.paper_tables)
    recunlearn tune SUBMODEL DATASET [OVERRIDES...]
                                          tune a sub-model on a dataset's validation split

Each subcommand answers --help. The `python -m` forms keep working."""

from __future__ import annotations

import sys

USAGE = __doc__.split("\n\n")[1]


def _run(args: list[str]) -> int:
    from . import run

    sys.argv = ["recunlearn run", *args]
    run.main()
    return 0


def _report(args: list[str]) -> int:
    from . import report

    report.main(args)
    return 0


def _table(args: list[str]) -> int:
    from . import table

    return table.main(args)


def _paper_tables(args: list[str]) -> int:
    from . import paper_tables

    return paper_tables.main(args)


def _tune(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help") or len(args) < 2:
        print(
            "usage: recunlearn tune SUBMODEL DATASET [OVERRIDES...]\n\nTunes SUBMODEL for method=retrain on "
            "DATASET's validation split (Optuna TPE) and writes its tuned preset "
            "(conf/submodel/tuned/DATASET_SUBMODEL.yaml).",
            file=sys.stdout if args else sys.stderr,
        )
        return 0 if args else 2
    return _run(["-m", f"experiment=tune_{args[0]}", f"dataset={args[1]}", *args[2:]])


COMMANDS = {"run": _run, "report": _report, "table": _table, "paper-tables": _paper_tables, "tune": _tune}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: recunlearn COMMAND [ARGS...]\n\n{USAGE}")
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command '{argv[0]}'. Valid: {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    return command(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
