"""Command line: `python -m bench {run,report,import-pytest,compare,list,env,profile}`.

Exit codes: 0 all cases ok (or unavailable here); 1 the run finished but some case failed
(compare --fail-above: a case is significantly slower);
2 bad input (one line on stderr); 130 interrupted (what was measured is on disk).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path

from bench import envinfo
from bench.sizes import parse_sizes
from bench.timing import Budget
from models.registry import MODELS, REGISTRY, for_model, get

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Rounds (one worker process each: the unit of replication) and sampling seconds per case and
# round. More processes matter more than more samples: at 8 processes a Welch test on the log
# process medians holds its false-positive rate and finds a 10% slowdown (tests/test_statistics.py),
# and the default MLP sweep fits in about 10 minutes on 2 cores.
DEFAULT_ROUNDS, QUICK_ROUNDS = 8, 6
DEFAULT_BUDGET_S, QUICK_BUDGET_S = 0.05, 0.03


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def _positive(kind, lo, hi, what):
    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not (lo <= v <= hi) or (isinstance(v, float) and not math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, got {text!r}")
        return v

    return conv


def build_parser() -> Parser:
    p = Parser(prog="python -m bench", description="Framework-overhead benchmark harness.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    cores = len(os.sched_getaffinity(0))
    add_run(sub, cores)
    add_readers(sub)
    add_pipeline(sub)
    add_profile(sub, cores)
    return p


def add_run(sub, cores: int) -> None:
    r = sub.add_parser("run", help="run the benchmark and write a run directory")
    r.add_argument("--model", default="mlp", help=f"one of {', '.join(MODELS)}")
    r.add_argument("--impl", default="all", help="comma-separated implementation names, or all")
    r.add_argument("--sizes", default="default",
                   help="quick | default | gpu | custom: BxHxL,... (mlp) or BxTxCxLxNH,... (gpt)")
    r.add_argument("--threads", type=_positive(int, 1, cores, "--threads"), default=cores,
                   help=f"threads for every framework (default: all {cores} cores)")
    r.add_argument("--rounds", type=_positive(int, 1, 100, "--rounds"), default=None,
                   help=f"rounds, each in fresh worker processes: the unit of every CI and test "
                        f"(default {DEFAULT_ROUNDS}; quick {QUICK_ROUNDS})")
    r.add_argument("--budget", type=_positive(float, 0.001, 600, "--budget"), default=None,
                   help=f"sampling seconds per case and round (default {DEFAULT_BUDGET_S}; quick {QUICK_BUDGET_S})")
    r.add_argument("--min-samples", type=_positive(int, 1, 10**6, "--min-samples"), default=Budget.min_samples,
                   help=f"timed calls per case and round at least, whatever the time (default {Budget.min_samples})")
    r.add_argument("--case-timeout", type=_positive(float, 1, 86400, "--case-timeout"), default=600.0,
                   help="seconds one case may take (build, compile, gate, samples) before its worker is killed")
    r.add_argument("--out", type=Path, default=None, help="new run directory (default results/<UTC>_<host>)")
    r.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="cpu (default), cuda, or auto (cuda when torch or jax sees a GPU); NumPy and C stay on the CPU")
    r.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA for torch and jax (default: strict fp32)")
    r.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    r.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="finish an interrupted run: only its missing rounds, with the settings in its run.json")


def add_readers(sub) -> None:
    rp = sub.add_parser("report", help="write report.md, analysis.csv and plots for a run directory")
    rp.add_argument("run_dir", type=Path)
    ip = sub.add_parser("import-pytest", help="turn a pytest-benchmark JSON file into a run directory")
    ip.add_argument("json", type=Path)
    ip.add_argument("--out", type=Path, default=None, help="new run directory (default results/<UTC>_<host>_pytest)")
    cp = sub.add_parser("compare", help="compare two run directories case by case")
    cp.add_argument("run_a", type=Path)
    cp.add_argument("run_b", type=Path)
    cp.add_argument("--csv", type=Path, default=None, help="also write the comparison as CSV here")
    cp.add_argument("--fail-above", type=_positive(float, 0, 10**6, "--fail-above"), default=None, metavar="PCT",
                    help="exit 1 when a case is called slower in RUN_B by more than PCT percent")
    cp.add_argument("--threshold", type=_positive(float, 0, 1000, "--threshold"), default=3.0, metavar="PCT",
                    help="smallest |B/A - 1| in percent that is called a change (default 3)")
    sub.add_parser("list", help="implementations and whether each is available here")
    sub.add_parser("env", help="print what run.json records about this machine")


def add_pipeline(sub) -> None:
    pp = sub.add_parser("pipeline", help="pipeline parallelism on torch.distributed: schedules against theory")
    pp.add_argument("--model", default="mlp", help=f"one of {', '.join(MODELS)}")
    pp.add_argument("--stages", type=_positive(int, -10**6, 64, "--stages"), default=2, metavar="P",
                    help="ranks (processes) in the pipeline (default 2)")
    pp.add_argument("--microbatches", default=None,
                    help="comma-separated M values (default 2,4,8,16; a schedule skips the ones it cannot take)")
    pp.add_argument("--schedules", default="all", help="comma-separated schedule names, or all")
    pp.add_argument("--batch", type=_positive(int, 1, 1 << 16, "--batch"), default=None,
                    help="examples per step (default: 128 for the mlp, 16 for the gpt)")
    pp.add_argument("--rounds", type=_positive(int, 1, 100, "--rounds"), default=3,
                    help="rounds, each a fresh process group: the unit of every CI (default 3)")
    pp.add_argument("--steps", type=_positive(int, 1, 10**4, "--steps"), default=5, help="timed steps per case and round")
    pp.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu: gloo; cuda: NCCL, one GPU per stage")
    pp.add_argument("--case-timeout", type=_positive(float, 1, 3600, "--case-timeout"), default=60.0,
                    help="seconds a rank may wait on its peers (gloo's timeout); a case whose group is silent for "
                         "twice that plus 60 s is killed")
    pp.add_argument("--out", type=Path, default=None, help="new run directory (default results/<UTC>_<host>_pipeline)")
    pp.add_argument("--no-report", action="store_true", help="do not write report.md at the end")


def add_profile(sub, cores: int) -> None:
    pf = sub.add_parser("profile", help="where one step's time goes, with the framework's own profiler")
    pf.add_argument("--model", default="mlp", help=f"one of {', '.join(MODELS)}")
    pf.add_argument("--impl", required=True, help="one implementation name, e.g. torch.eager")
    pf.add_argument("--size", required=True, help="one size: BxHxL (mlp) or BxTxCxLxNH (gpt)")
    pf.add_argument("--threads", type=_positive(int, 1, cores, "--threads"), default=cores)
    pf.add_argument("--steps", type=_positive(int, 1, 10**5, "--steps"), default=20, help="calls profiled")
    pf.add_argument("--top", type=_positive(int, 1, 1000, "--top"), default=15, help="entries printed")


def resolve_impls(model: str, text: str, device: str = "cpu") -> list:
    """--impl: names, or all = every implementation that can run on this device (naming a
    CUDA-only one in a CPU run gives its row, unavailable, with the reason)."""
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}; allowed: {', '.join(MODELS)}")
    allowed = [i.name for i in for_model(model)]
    if text == "all":
        return [i for i in for_model(model) if device in i.devices or "cpu" in i.devices]
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise UsageError(f"unknown implementation {', '.join(bad) or repr(text)}; allowed: {', '.join(allowed)}, all")
    if len(set(names)) != len(names):
        raise UsageError(f"--impl names an implementation twice: {text}")
    return [get(model, n) for n in names]


def default_out() -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("results") / f"{stamp}_{socket.gethostname()}"


def check_out(out: Path) -> None:
    if out.exists():
        raise UsageError(f"--out {out} already exists; a run directory is never overwritten or reused")
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not a writable directory")


RUN_SETTINGS = ("--model", "--impl", "--sizes", "--threads", "--rounds", "--budget", "--min-samples",
                "--case-timeout", "--out", "--device", "--tf32")
FRAMEWORK_BASE_BYTES = 1 << 30  # an imported framework, its allocator and compiled code


def check_memory(sizes) -> None:
    """Refuse, before anything is allocated, a size whose estimate exceeds available memory."""
    import psutil

    from models.registry import model_module

    avail = psutil.virtual_memory().available
    for z in sizes:
        need = model_module(z.model).memory_bytes(z.config()) + FRAMEWORK_BASE_BYTES
        if need > 0.9 * avail:
            raise UsageError(
                f"size {z.label} needs about {need / 2**30:.1f} GiB per worker (estimate: parameters, "
                f"gradients, activations, float64 reference), {avail / 2**30:.1f} GiB available"
            )


def make_runner(args, argv: list[str]):
    """A new run (settings from the options) or a resumed one (settings from its run.json)."""
    from bench.results import RunDir
    from bench.runner import Runner
    from bench.schema import SchemaError
    from bench.settings import Settings

    if args.resume is not None:
        given = [o for o in RUN_SETTINGS if any(a == o or a.startswith(o + "=") for a in argv)]
        if given:
            raise UsageError(f"--resume takes its settings from run.json; do not combine it with {', '.join(given)}")
        try:
            return Runner.resume(RunDir(args.resume), sys.argv[:])
        except SchemaError as e:
            raise UsageError(f"--resume {args.resume}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"--resume {args.resume}: run.json or results.csv is damaged ({e})") from None
    resolve_impls(args.model, args.impl)  # names checked before the device probe
    try:
        sizes = parse_sizes(args.sizes, args.model)
    except ValueError as e:
        raise UsageError(str(e)) from None
    check_memory(sizes)
    from bench import devices

    try:
        device = devices.resolve(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    impls = resolve_impls(args.model, args.impl, device)
    quick = args.sizes == "quick"
    budget_s = args.budget if args.budget is not None else (QUICK_BUDGET_S if quick else DEFAULT_BUDGET_S)
    settings = Settings(
        model=args.model, impls=[i.name for i in impls], sizes=sizes, threads=args.threads,
        rounds=args.rounds or (QUICK_ROUNDS if quick else DEFAULT_ROUNDS),
        budget=Budget(seconds=budget_s, min_samples=args.min_samples),
        case_timeout_s=args.case_timeout, device=device, tf32=args.tf32,
    )
    out = args.out or default_out()
    check_out(out)
    try:
        run = RunDir.create(out)
    except OSError as e:
        raise UsageError(f"--out {out}: {e.strerror or e}") from None
    return Runner(settings, run, sys.argv[:])


def cmd_run(args, argv: list[str]) -> int:
    from bench import progress
    from bench.runner import exit_status

    runner = make_runner(args, argv)

    def stop(signum, frame):  # finish the current write, stop the worker, keep everything
        runner.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"run directory: {runner.run_dir.path}", file=sys.stderr)
    commit = runner.meta["machine"].get("git_commit") or ""
    if commit.endswith("-dirty"):
        print("warning: the tree has uncommitted changes; this run will not be reproducible from a commit "
              "(run.json and the report say so)", file=sys.stderr)
    with progress.Bar() as bar:
        rows = runner.run(bar.update)
    if runner.meta["status"] == "interrupted":
        print(f"interrupted; what was measured is in {runner.run_dir.path}; "
              f"finish it with: python -m bench run --resume {runner.run_dir.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.summary(rows)
    if not args.no_report:
        from bench import report

        print(f"report: {report.write_report(runner.run_dir.path)}", file=sys.stderr)
    print(f"results: {runner.run_dir.results_path}", file=sys.stderr)
    return exit_status(rows)


def cmd_report(args) -> int:
    from bench import pipe_report, report
    from bench.schema import SchemaError

    writer = pipe_report if (Path(args.run_dir) / "pipeline.csv").is_file() else report
    try:
        path = writer.write_report(args.run_dir)
    except SchemaError as e:
        raise UsageError(str(e)) from None
    except (ValueError, KeyError, TypeError, IndexError) as e:  # valid files that do not fit together
        raise UsageError(f"{args.run_dir}: cannot report ({type(e).__name__}: {e})") from None
    print(f"report: {path}")
    return EXIT_OK


def cmd_import(args) -> int:
    from bench.importer import ImportFailure, import_pytest

    out = args.out or Path(str(default_out()) + "_pytest")
    check_out(out)
    try:
        path = import_pytest(args.json, out)
    except ImportFailure as e:
        raise UsageError(str(e)) from None
    print(f"run directory: {path}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench import compare
    from bench.results import atomic_write
    from bench.schema import SchemaError

    try:
        df, flags, only = compare.compare_runs(args.run_a, args.run_b, args.threshold / 100)
    except SchemaError as e:
        raise UsageError(str(e)) from None
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(f"A: {args.run_a}\nB: {args.run_b}\nchanged: {compare.TEST_NAME}, p < {compare.ALPHA}, and "
                  f"|B/A - 1| > {args.threshold:g}%; ratio and 95% CI: geometric means of the process medians, "
                  "Welch t-interval; n: processes", highlight=False)
    for f in flags:
        console.print(f"[bold yellow]warning:[/] {f}", highlight=False)
    t = Table("impl", "size", "median A µs", "median B µs", "B/A", "95% CI", "p", "n A/B", "changed")
    for _, r in df.iterrows():
        t.add_row(r["impl"], r["size"], compare.fmt(r["median_a_s"]), compare.fmt(r["median_b_s"]),
                  f"{r['ratio_b_a']:.3f}", f"[{r['ratio_ci_low']:.3f}, {r['ratio_ci_high']:.3f}]",
                  f"{r['p_value']:.2g}", f"{r['n_a']}/{r['n_b']}", r["change"] or "no")
    console.print(t)
    for line in only:
        console.print(line, highlight=False)
    if args.csv:
        atomic_write(args.csv, df.to_csv(index=False))
    if args.fail_above is not None:
        worse = compare.slower_beyond(df, args.fail_above)
        if not worse.empty:
            console.print(f"{len(worse)} case(s) called slower by more than {args.fail_above:g}%: "
                          + ", ".join(f"{r['impl']} {r['size']} x{r['ratio_b_a']:.2f}" for _, r in worse.iterrows()),
                          highlight=False)
            return EXIT_FAILURES
    return EXIT_OK


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    t = Table("implementation", "model", "framework", "mode", "devices", "available here")
    for i in (i for impls in REGISTRY.values() for i in impls.values()):
        why = i.unavailable_reason()
        t.add_row(i.name, i.model, i.framework, i.mode, ", ".join(i.devices), "yes" if not why else f"no: {why}")
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return EXIT_OK


def cmd_pipeline(args, argv: list[str]) -> int:
    from bench import pipeline
    from bench.results import RunDir
    from models.registry import model_module

    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; allowed: {', '.join(MODELS)}")
    config = dict(pipeline.DEFAULT_CONFIG[args.model], **({"batch": args.batch} if args.batch else {}))
    names = list(pipeline.SCHEDULES) if args.schedules == "all" else [n.strip() for n in args.schedules.split(",")]
    try:
        ms = [int(m) for m in (args.microbatches or "2,4,8,16").split(",")]
    except ValueError:
        raise UsageError(f"--microbatches takes whole numbers, got {args.microbatches!r}") from None
    gpus = pipeline.gpu_count() if args.device == "cuda" else 0
    try:
        notes = pipeline.validate(args.model, config, args.stages, ms, names, args.device,
                                  len(os.sched_getaffinity(0)), gpus, explicit_ms=args.microbatches is not None)
    except ValueError as e:
        raise UsageError(str(e)) from None
    s = pipeline.PipelineSettings(args.model, config, args.stages, ms, names, args.rounds, args.steps, args.device,
                                  timeout_s=args.case_timeout, grad_rtol=model_module(args.model).UPDATE_RTOL,
                                  notes=notes)
    out = args.out or Path(str(default_out()) + "_pipeline")
    check_out(out)
    out.mkdir(parents=True)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    rows = pipeline.run(s, RunDir(out), sys.argv[:], lambda d, r: print(f"round {r + 1}: {d}", file=sys.stderr))
    if not args.no_report:
        from bench import pipe_report

        print(f"report: {pipe_report.write_report(out)}", file=sys.stderr)
    print(f"results: {out / 'pipeline.csv'}", file=sys.stderr)
    return EXIT_FAILURES if any(r["status"] != "ok" for r in rows) else EXIT_OK


def cmd_profile(args) -> int:
    from bench import profile

    (impl,) = resolve_impls(args.model, args.impl) if "," not in args.impl else (None,)
    if impl is None:
        raise UsageError("--impl takes one implementation")
    try:
        (size,) = parse_sizes(args.size, args.model)
    except ValueError as e:
        raise UsageError(str(e)) from None
    why = impl.unavailable_reason()
    if why:
        raise UsageError(f"{impl.name} cannot run here: {why}")
    head, rows = profile.profile(impl, size, args.threads, args.steps)
    print(head)
    print(profile.table(rows, args.top))
    return EXIT_OK


def cmd_env(args) -> int:
    print(json.dumps(envinfo.collect(), indent=2))
    return EXIT_OK


def one_line(text: str) -> str:
    """Escape what would break the error onto several lines (arguments can hold anything)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "pipeline":
            return cmd_pipeline(args, argv)
        commands = {"report": cmd_report, "import-pytest": cmd_import, "compare": cmd_compare,
                    "list": cmd_list, "env": cmd_env, "profile": cmd_profile}
        return commands[args.command](args)
    except UsageError as e:
        print(f"bench: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
