"""Command line: `python -m bench COMMAND ...`, one module per command (in the style of asv's
commands/): each owns its `add_arguments(parser)` and `run(args)`, and its HELP line.

Exit codes: 0 all cases ok (or unavailable here); 1 the run finished but some case failed
(compare --fail-above: a case is significantly slower); 2 bad input (one line on stderr);
130 interrupted (what was measured is on disk).
"""

from __future__ import annotations

import sys

from bench.commands import claim, compare, env, import_pytest, pipeline, profile, report, upgrade
from bench.commands import list as list_
from bench.commands import run as run_
from bench.commands.common import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, one_line

COMMANDS = {
    "run": run_,
    "report": report,
    "import-pytest": import_pytest,
    "compare": compare,
    "list": list_,
    "env": env,
    "pipeline": pipeline,
    "profile": profile,
    "claim": claim,
    "upgrade": upgrade,
}


def build_parser() -> Parser:
    p = Parser(prog="python -m bench", description="Framework-overhead benchmark harness.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, module in COMMANDS.items():
        cmd = sub.add_parser(name, help=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(func=module.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.func(args)
    except UsageError as e:
        print(f"bench: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
