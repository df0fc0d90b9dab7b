"""`bench run`: measure every implementation at every size and write a run directory."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from bench import options
from bench.commands.common import (
    EXIT_INTERRUPTED,
    UsageError,
    add_report_and_resume,
    check_out,
    default_out,
    positive,
    resumed,
)
from bench.sizes import (
    DEFAULT_BUDGET_S,
    DEFAULT_CHUNKS,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_ROUNDS,
    QUICK_BUDGET_S,
    QUICK_ROUNDS,
)
from bench.sweep.plan import TARGET_CI
from bench.timing import Budget
from models.registry import MODELS, spec

HELP = "run the benchmark and write a run directory"


def add_arguments(r) -> None:
    s = r.add_argument_group("settings (a resumed run takes them from its run.json)")
    options.add(s, "model")
    s.add_argument(
        "--impl",
        default=None,
        help="comma-separated implementation names, or all (default: all, less what the default "
        "sweep "
        "leaves out: the GPT's torch.scan, whose compile every worker process pays again)",
    )
    options.add(s, "sizes", "threads")
    s.add_argument(
        "--harness-core",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leave the first CPU to the runner and the system, the workers pinned to the others "
        "(default: on with 2 or more CPUs)",
    )
    s.add_argument(
        "--live-workers",
        choices=["one", "all"],
        default="all",
        help="all (default): one worker per framework alive through the round, sizes outermost; "
        "one: one "
        "worker process alive at a time, framework by framework (no idle framework beside a case)",
    )
    s.add_argument(
        "--rounds",
        type=positive(int, 1, 100, "--rounds"),
        default=None,
        help=f"base rounds, each in fresh worker processes: the unit of every CI and test "
        f"(default {DEFAULT_ROUNDS}; quick {QUICK_ROUNDS})",
    )
    s.add_argument(
        "--max-rounds",
        type=positive(int, 1, 100, "--max-rounds"),
        default=None,
        help=f"a case whose CI is wider than +-{TARGET_CI * 100:.0f}%% after the base rounds gets "
        "extra ones, "
        f"decided once, up to this many in all (default {DEFAULT_MAX_ROUNDS}; quick and an "
        "explicit "
        "--rounds: none)",
    )
    s.add_argument(
        "--budget-min",
        type=positive(float, 0.1, 10**5, "--budget-min"),
        default=None,
        help="no extra round beyond this estimated run time in minutes (default sweep: "
        + ", ".join(f"{m} {spec(m).budget_min:g}" for m in MODELS if spec(m).budget_min)
        + "; otherwise none)",
    )
    s.add_argument(
        "--budget",
        type=positive(float, 0.001, 600, "--budget"),
        default=None,
        help=f"sampling seconds per case and round (default {DEFAULT_BUDGET_S}; quick "
        f"{QUICK_BUDGET_S})",
    )
    s.add_argument(
        "--chunks",
        type=positive(int, 1, 50, "--chunks"),
        default=None,
        help="split each case's sampling in a process into this many turns, the process's cases "
        "taking "
        "theirs in between, so its samples spread over the process's life (default "
        f"{DEFAULT_CHUNKS}; "
        "1: one stretch; README: Precision)",
    )
    s.add_argument(
        "--min-samples",
        type=positive(int, 1, 10**6, "--min-samples"),
        default=Budget.min_samples,
        help="timed calls per case and round at least, whatever the time (default "
        f"{Budget.min_samples})",
    )
    s.add_argument(
        "--case-timeout",
        type=positive(float, 1, 86400, "--case-timeout"),
        default=600.0,
        help="seconds one case may take (build, compile, gate, samples) before its worker is "
        "killed",
    )
    s.add_argument(
        "--out", type=Path, default=None, help="new run directory (default results/<UTC>_<host>)"
    )
    options.add(s, "device", "tf32")
    s.add_argument(
        "--native-kernels",
        action="store_true",
        help="clear, for the workers only, the variables that hold a library below the CPU's "
        "kernels "
        "(OPENBLAS_CORETYPE, MKL_DEBUG_CPU_TYPE, ATEN_CPU_CAPABILITY, DNNL_MAX_CPU_ISA, XLA's max "
        "ISA; "
        "recorded in run.json)",
    )
    add_report_and_resume(r, s, "run: only its missing rounds")


def make_runner(args):
    """A new run (settings from the options) or a resumed one (settings from its run.json)."""
    from bench.results import RunDir
    from bench.sweep.runner import Runner
    from bench.sweep.settings import RunOptions, new_settings

    if args.resume is not None:
        return resumed(args, Runner.resume, "results.csv")
    try:
        settings = new_settings(RunOptions.from_args(args))
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = args.out or default_out()
    check_out(out)
    try:
        run = RunDir.create(out)
    except OSError as e:
        raise UsageError(f"--out {out}: {e.strerror or e}") from None
    return Runner(settings, run, sys.argv[:])


def run(args) -> int:
    from bench.sweep import progress
    from bench.sweep.runner import exit_status

    runner = make_runner(args)

    def stop(signum, frame):  # finish the current write, stop the worker, keep everything
        runner.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"run directory: {runner.run_dir.path}", file=sys.stderr)
    commit = runner.meta.machine.get("git_commit") or ""
    if commit.endswith("-dirty"):
        print(
            "warning: the tree has uncommitted changes; this run will not be reproducible from a "
            "commit "
            "(run.json and the report say so)",
            file=sys.stderr,
        )
    runner.warn = lambda w: print(f"warning: {w}", file=sys.stderr)
    if runner.settings.native_kernels:
        cleared = runner.meta.native_kernels["cleared_for_workers"]
        print(
            "--native-kernels: cleared for the workers: "
            f"{', '.join(f'{k}={v}' for k, v in cleared.items()) or 'nothing was set'}",
            file=sys.stderr,
        )
    for name, why in runner.settings.left_out.items():
        print(f"left out of this sweep: {name}: {why}; --impl all includes it", file=sys.stderr)
    with progress.Bar() as bar:
        rows = runner.run(bar.update)
    if runner.meta.status == "interrupted":
        print(
            f"interrupted; what was measured is in {runner.run_dir.path}; "
            f"finish it with: python -m bench run --resume {runner.run_dir.path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    progress.summary(rows)
    if not args.no_report:
        from bench.report import render

        print(f"report: {render.write_report(runner.run_dir.path)}", file=sys.stderr)
    print(f"results: {runner.run_dir.results_path}", file=sys.stderr)
    return exit_status(rows)
