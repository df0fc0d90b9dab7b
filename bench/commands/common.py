"""What every command shares: one-line usage errors (exit 2), number options, run directories."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from bench.options import bounded

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


positive = bounded  # an argparse number type within bounds (bench/options.py)


def cores() -> int:
    return len(os.sched_getaffinity(0))


def default_out(suffix: str = "") -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("results") / f"{stamp}_{socket.gethostname()}{suffix}"


def check_out(out: Path) -> None:
    if out.exists():
        raise UsageError(
            f"--out {out} already exists; a run directory is never overwritten or reused"
        )
    probe = out.parent if str(out.parent) else Path(".")
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not a writable directory")


def given(argv: list[str], options) -> list[str]:
    """Which of these options the command line names (for --resume, which takes none of them)."""
    return [o for o in options if any(a == o or a.startswith(o + "=") for a in argv)]


def option_strings(group: argparse._ArgumentGroup) -> list[str]:
    """The long options of an argument group: the settings a resume must not be given again."""
    return [s for a in group._group_actions for s in a.option_strings if s.startswith("--")]


def one_line(text: str) -> str:
    """Escape what would break the error onto several lines (arguments can hold anything)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def resumed(args, resume, what: str):
    """`resume(RunDir)` of --resume's directory, refused (one line) when the command line repeats a
    setting (a resumed run takes them from its run.json) or the directory is not resumable."""
    from bench.results import RunDir
    from bench.schema import SchemaError

    repeated = given(args.argv, args.settings_options)
    if repeated:
        raise UsageError(
            "--resume takes its settings from run.json; do not combine it with "
            f"{', '.join(repeated)}"
        )
    try:
        return resume(RunDir(args.resume), sys.argv[:])
    except SchemaError as e:
        raise UsageError(f"--resume {args.resume}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"--resume {args.resume}: run.json or {what} is damaged ({e})") from None


def add_report_and_resume(parser, settings, what: str) -> None:
    """--no-report and --resume RUN_DIR; the `settings` group's options are what a resume refuses."""
    parser.add_argument(
        "--no-report", action="store_true", help="do not write report.md at the end"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help=f"finish an interrupted {what}, with the settings in its run.json",
    )
    parser.set_defaults(settings_options=option_strings(settings))
