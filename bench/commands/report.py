"""`bench report RUN_DIR`: regenerate report.md, analysis.csv and plots (sweep or pipeline run)."""

from __future__ import annotations

from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError

HELP = "write report.md, analysis.csv and plots for a run directory"


def add_arguments(p) -> None:
    p.add_argument("run_dir", type=Path)


def run(args) -> int:
    from bench.report import pipeline, render
    from bench.schema import SchemaError

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
