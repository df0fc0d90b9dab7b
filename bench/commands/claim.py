"""`bench claim`: the step-time model of a GPU cluster (bench/claim/), validated on published runs."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError

HELP = (
    "the step-time model of a GPU cluster: which terms dominate, the best layout for each "
    "stack, and what removing the framework would save"
)


def add_arguments(p) -> None:
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=None,
        help="a TOML config ([model], [parallel], [hardware], [software]); or --preset",
    )
    p.add_argument(
        "--preset", default=None, help="seed, or a published run's name (--list-presets)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (step_s, mfu, "
        "breakdown_s, ...; with --search: best, best_framework_free, saving_share)",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="search every layout of the GPU count "
        "that fits in memory, for the framework stack and for a framework-free one",
    )
    p.add_argument(
        "--validate",
        action="store_true",
        help="predict both published tables, leave "
        "one model out, and replay this project's pipeline probe",
    )
    p.add_argument(
        "--refit", action="store_true", help="with --validate: fit the named parameters again"
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the committed reports (validation.md, seed.md, seed.png) into DIR",
    )
    p.add_argument(
        "--list-hardware", action="store_true", help="print the GPU table with its sources"
    )
    p.add_argument("--list-presets", action="store_true", help="print the preset names")


def run(args) -> int:
    from bench.claim import hardware, presets

    if args.list_hardware:
        print(hardware.table())
        return EXIT_OK
    if args.list_presets:
        print("\n".join(presets.presets()))
        return EXIT_OK
    if args.report is not None:
        from bench.claim import reports

        with _bar("layouts") as tick:
            paths = reports.write(args.report, progress=tick)
        print("\n".join(str(p) for p in paths))
        return EXIT_OK
    if args.validate:
        return validate(args.refit, args.json)
    return evaluate(load(args), args.search, args.json)


def evaluate(c, search: bool, as_json: bool) -> int:
    from bench.claim import answer, render

    try:
        s = answer.model.step(c, answer.framework_host(c))
        with _bar("layouts") as tick:
            v = answer.verdict(c, progress=tick) if search else None
    except ValueError as e:  # a framework without a measured host cost; no layout fits
        raise UsageError(str(e)) from None
    print(json.dumps(render.as_json(s, v), indent=2) if as_json else render.markdown(s, v))
    return EXIT_OK


@contextmanager
def _bar(what: str):
    """A callback that advances a transient progress bar on stderr (None off a terminal)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda: bar.advance(task)


def load(args):
    from bench.claim import config, presets
    from bench.claim.memory import check_memory

    if (args.config is None) == (args.preset is None):
        raise UsageError("give a CONFIG.toml or --preset NAME (one of them)")
    try:
        if args.preset is not None:
            known = presets.presets()
            if args.preset not in known:
                raise UsageError(f"--preset {args.preset!r}: unknown (known: {', '.join(known)})")
            c = known[args.preset]
        else:
            c = config.load(args.config)
        return check_memory(c)
    except config.ConfigError as e:
        raise UsageError(str(e)) from None


def validate(refit: bool, as_json: bool) -> int:
    from bench.claim import reports

    result = reports.validation(refit)
    if as_json:
        print(json.dumps(reports.validation_json(result), indent=2))
    else:
        print(reports.validation_markdown(result))
    return EXIT_OK
