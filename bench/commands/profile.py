"""`bench profile`: where one step's time goes, with the framework's own profiler."""

from __future__ import annotations

from bench import frameworks, options
from bench.commands.common import EXIT_OK, UsageError, positive

HELP = "where one step's time goes, with the framework's own profiler"


def add_arguments(pf) -> None:
    options.add(pf, "model")
    pf.add_argument("--impl", required=True, help="one implementation name, e.g. torch.eager")
    pf.add_argument("--size", required=True, help="one size: BxHxL (mlp) or BxTxCxLxNH (gpt)")
    options.add(pf, "threads")
    pf.add_argument(
        "--steps", type=positive(int, 1, 10**5, "--steps"), default=20, help="calls profiled"
    )
    pf.add_argument(
        "--top", type=positive(int, 1, 1000, "--top"), default=15, help="entries printed"
    )


def run(args) -> int:
    from bench.sizes import parse_sizes
    from bench.sweep import profile
    from models.registry import select

    try:
        impls = select(args.model, args.impl)
        (size,) = parse_sizes(args.size, args.model)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if len(impls) != 1 or args.impl == "all":
        raise UsageError("--impl takes one implementation")
    (impl,) = impls
    why = frameworks.impl_unavailable(impl)
    if why:
        raise UsageError(f"{impl.name} cannot run here: {why}")
    head, rows = profile.profile(impl, size, options.threads_or_default(args.threads), args.steps)
    print(head)
    print(profile.table(rows, args.top))
    return EXIT_OK
