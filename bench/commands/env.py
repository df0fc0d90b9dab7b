"""`bench env`: what run.json records about this machine."""

from __future__ import annotations

import json

from bench.commands.common import EXIT_OK

HELP = "print what run.json records about this machine"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from bench import envinfo

    print(json.dumps(envinfo.collect(), indent=2))
    return EXIT_OK
