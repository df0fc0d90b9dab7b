"""`bench import-pytest BENCHMARK.json`: a pytest-benchmark JSON file -> a run directory."""

from __future__ import annotations

from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError, check_out, default_out

HELP = "turn a pytest-benchmark JSON file into a run directory"


def add_arguments(p) -> None:
    p.add_argument("json", type=Path)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new run directory (default results/<UTC>_<host>_pytest)",
    )


def run(args) -> int:
    from bench.sweep.importer import ImportFailure, import_pytest

    out = args.out or default_out("_pytest")
    check_out(out)
    try:
        path = import_pytest(args.json, out)
    except ImportFailure as e:
        raise UsageError(str(e)) from None
    print(f"run directory: {path}")
    return EXIT_OK
