"""`bench upgrade RUN_DIR`: rewrite an older run in the current schema (bench/schema.py's chain)."""

from __future__ import annotations

from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError

HELP = "rewrite a run directory of an older schema in the current one"


def add_arguments(p) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory (bench run or bench pipeline)")


def run(args) -> int:
    from bench.results import upgrade_run
    from bench.schema import SchemaError

    try:
        for f in upgrade_run(args.run_dir):
            print(f)
    except SchemaError as e:
        raise UsageError(str(e)) from None
    return EXIT_OK
