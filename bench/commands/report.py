"""`bench report RUN_DIR`: regenerate report.md, analysis.csv and plots (sweep or pipeline run)."""

from __future__ import annotations

from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError

HELP = "write report.md, analysis.csv and plots for a run directory, or the README's verdict"


def add_arguments(p) -> None:
    p.add_argument("run_dir", type=Path, nargs="?", help="a sweep's or a probe's run directory")
    p.add_argument(
        "--readme",
        type=Path,
        nargs="?",
        const=Path("README.md"),
        default=None,
        metavar="README",
        help="write the verdict block of README (default README.md) and the blocks of "
        "docs/results.md beside it from the reference runs (results/reference.toml) and the "
        "claim's reports",
    )


def write_verdict(readme: Path) -> int:
    from bench.reference import ManifestError
    from bench.report import verdict
    from bench.schema import SchemaError

    try:
        for path in verdict.write(readme, readme.parent / "docs" / "results.md"):
            print(f"generated blocks: {path}")
    except (OSError, ManifestError, SchemaError, ValueError, KeyError) as e:
        raise UsageError(f"--readme: {str(e).splitlines()[0]}") from None
    return EXIT_OK


def run(args) -> int:
    from bench.report import pipeline, render
    from bench.schema import SchemaError

    if args.readme is not None:
        return write_verdict(args.readme)
    if args.run_dir is None:
        raise UsageError("report: give a run directory, or --readme")

    writer = pipeline if (Path(args.run_dir) / "pipeline.csv").is_file() else render
    try:
        path = writer.write_report(args.run_dir)
    except SchemaError as e:
        raise UsageError(str(e)) from None
    except (
        ValueError,
        KeyError,
        TypeError,
        IndexError,
    ) as e:  # valid files that do not fit together
        raise UsageError(f"{args.run_dir}: cannot report ({type(e).__name__}: {e})") from None
    print(f"report: {path}")
    return EXIT_OK
