"""`bench compare RUN_A RUN_B`: the comparison (bench/report/compare.py), rendered with rich."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.commands.common import EXIT_FAILURES, EXIT_OK, UsageError, positive

HELP = "compare two run directories case by case"


def add_arguments(cp) -> None:
    cp.add_argument("run_a", type=Path)
    cp.add_argument("run_b", type=Path)
    cp.add_argument("--csv", type=Path, default=None, help="also write the comparison as CSV here")
    cp.add_argument(
        "--fail-above",
        type=positive(float, 0, 10**6, "--fail-above"),
        default=None,
        metavar="PCT",
        help="exit 1 when a case is called slower in RUN_B by more than PCT percent",
    )
    cp.add_argument(
        "--threshold",
        type=positive(float, 0, 1000, "--threshold"),
        default=3.0,
        metavar="PCT",
        help="smallest |B/A - 1| in percent that is called a change (default 3)",
    )


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.report import compare
    from bench.results import atomic_write
    from bench.schema import SchemaError
    from bench.tables import fmt_us

    try:
        df, flags, only = compare.compare_runs(args.run_a, args.run_b, args.threshold / 100)
    except SchemaError as e:
        raise UsageError(str(e)) from None
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(
        f"A: {args.run_a}\nB: {args.run_b}\nchanged: {compare.TEST_NAME}, p < {compare.ALPHA}, and "
        f"|B/A - 1| > {args.threshold:g}%; ratio and 95% CI: geometric means of the process "
        "medians, "
        "Welch t-interval; n: processes; detectable: the smallest change called with 80% power at "
        "these runs' "
        "own drift and n",
        highlight=False,
    )
    for f in flags:
        console.print(f"[bold yellow]warning:[/] {f}", highlight=False)
    t = Table(
        "impl",
        "size",
        "median A µs",
        "median B µs",
        "B/A",
        "95% CI",
        "p",
        "n A/B",
        "changed",
        "detectable",
    )
    for _, r in df.iterrows():
        t.add_row(
            r["impl"],
            r["size"],
            fmt_us(r["median_a_s"]),
            fmt_us(r["median_b_s"]),
            f"{r['ratio_b_a']:.3f}",
            f"[{r['ratio_ci_low']:.3f}, {r['ratio_ci_high']:.3f}]",
            f"{r['p_value']:.2g}",
            f"{r['n_a']}/{r['n_b']}",
            r["change"] or "no",
            f"±{r['detectable']:.1%}" if r["detectable"] == r["detectable"] else "n/a",
        )
    console.print(t)
    for line in only:
        console.print(line, highlight=False)
    if args.csv:
        atomic_write(args.csv, df.to_csv(index=False))
    if args.fail_above is not None:
        worse = compare.slower_beyond(df, args.fail_above)
        if not worse.empty:
            console.print(
                f"{len(worse)} case(s) called slower by more than {args.fail_above:g}%: "
                + ", ".join(
                    f"{r['impl']} {r['size']} x{r['ratio_b_a']:.2f}" for _, r in worse.iterrows()
                ),
                highlight=False,
            )
            return EXIT_FAILURES
    return EXIT_OK
