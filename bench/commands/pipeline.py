"""`bench pipeline`: the pipeline-parallel probe (bench/pipeline/)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from bench import options
from bench.commands.common import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_report_and_resume,
    check_out,
    cores,
    default_out,
    positive,
    resumed,
)
from bench.pipeline.settings import PipelineSettings

ROUNDS, MAX_ROUNDS, STEPS = 8, 24, 10  # the CI half-width of GPipe and 1F1B rows under 10% (README)
HELP = "pipeline parallelism (torch.distributed, JAX, C over MPI): schedules against theory"


def add_arguments(pp) -> None:
    s = pp.add_argument_group("settings (a resumed probe takes them from its run.json)")
    options.add(s, "model")
    s.add_argument(
        "--framework",
        default="all",
        help="comma-separated: torch, jax (shard_map, one process), jax-dist (jax.distributed), c "
        "(C over MPI); all (default: every one on CPU; torch on CUDA; torch, jax-dist and c "
        "across nodes)",
    )
    s.add_argument(
        "--stages",
        type=positive(int, -(10**6), 64, "--stages"),
        default=2,
        metavar="P",
        help="ranks (processes) in the pipeline (default 2)",
    )
    s.add_argument(
        "--microbatches",
        default=None,
        help="comma-separated M values (default 2,4,8,16; a schedule skips the ones it cannot "
        "take)",
    )
    s.add_argument("--schedules", default="all", help="comma-separated schedule names, or all")
    s.add_argument(
        "--batch",
        type=positive(int, 1, 1 << 16, "--batch"),
        default=None,
        help="examples per step (default: the model's probe config, models/<model>/pipeline.py)",
    )
    s.add_argument(
        "--rounds",
        type=positive(int, 1, 100, "--rounds"),
        default=None,
        help=f"base rounds, each fresh processes: the unit of every CI (default {ROUNDS})",
    )
    s.add_argument(
        "--max-rounds",
        type=positive(int, 0, 200, "--max-rounds"),
        default=None,
        help="rounds in all for a case whose base rounds leave its 95%% CI wider than +-8%%, "
        "decided "
        f"once from them (default {MAX_ROUNDS}; with an explicit --rounds, none)",
    )
    s.add_argument(
        "--steps",
        type=positive(int, 1, 10**4, "--steps"),
        default=STEPS,
        help=f"timed steps per case and round (default {STEPS})",
    )
    options.add(s, "device")
    s.add_argument(
        "--case-timeout",
        type=positive(float, 1, 3600, "--case-timeout"),
        default=60.0,
        help="seconds a rank may wait on its peers (gloo's timeout); a case whose group is silent "
        "for "
        "twice that plus 60 s is killed",
    )
    s.add_argument(
        "--nnodes",
        type=positive(int, 1, 1024, "--nnodes"),
        default=1,
        help="machines; each runs --stages / N ranks. Default 1: nothing listens beyond loopback",
    )
    s.add_argument(
        "--node-rank",
        type=positive(int, 0, 1023, "--node-rank"),
        default=0,
        help="this machine's index; node 0 records the probe, the others serve its process groups",
    )
    s.add_argument(
        "--rdzv-endpoint",
        default="",
        metavar="HOST:PORT",
        help="node 0's address and a port where the other nodes join it, when --nnodes > 1; each "
        "process group then meets at another port of that address",
    )
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new run directory (default results/<UTC>_<host>_pipeline)",
    )
    add_report_and_resume(pp, s, "probe: only its missing (case, round) pairs")


def max_rounds(args) -> int:
    if args.max_rounds is not None:
        return args.max_rounds
    return MAX_ROUNDS if args.rounds is None else 0  # an explicit --rounds means exactly that many


def make_probe(args):
    from bench.pipeline.probe import Probe
    from bench.pipeline.settings import ProbeOptions, new_settings
    from bench.results import RunDir

    if args.resume is not None:
        probe = resumed(args, Probe.resume, "pipeline_results.jsonl")
        if probe.s.nnodes > 1:
            probe.roster = join_nodes(probe.s)
        return probe
    from bench import devices
    from bench.pipeline.nodes import check_endpoint

    try:
        # auto: a GPU if a framework sees one; cuda: its GPUs are counted in new_settings
        device = devices.resolve("auto") if args.device == "auto" else args.device
        check_endpoint(args.rdzv_endpoint, args.nnodes, args.node_rank)
        if args.nnodes > 1 and args.stages % args.nnodes:
            raise ValueError(f"--stages {args.stages} is not a multiple of --nnodes {args.nnodes}")
        opts = ProbeOptions(
            args.model,
            args.batch,
            args.stages,
            args.microbatches,
            args.schedules,
            args.rounds or ROUNDS,
            args.steps,
            device,
            args.case_timeout,
            args.framework,
            args.nnodes,
            args.node_rank,
            args.rdzv_endpoint,
            max_rounds(args),
        )
        s = new_settings(opts, cores())
    except ValueError as e:
        raise UsageError(str(e)) from None
    if s.node_rank > 0:
        return s
    out = args.out or default_out("_pipeline")
    check_out(out)
    roster = join_nodes(s) if s.nnodes > 1 else None
    out.mkdir(parents=True)
    for n in s.notes:
        print(f"note: {n}", file=sys.stderr)
    probe = Probe(s, RunDir(out), sys.argv[:])
    probe.roster = roster
    return probe


def serve(args, s: PipelineSettings) -> int:
    """A node other than 0: it starts the ranks node 0 sends it, and records nothing."""
    import threading

    from bench.pipeline.nodes import serve

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logs = args.out or default_out(f"_pipeline_node{s.node_rank}")
    return serve(s, logs, stop, lambda m: print(m, file=sys.stderr))


def join_nodes(s: PipelineSettings):
    """Node 0's roster of the other nodes (bench/pipeline/nodes.py); UsageError when they do not
    all come within the case timeout."""
    from bench.pipeline.nodes import NodeLost, Roster

    try:
        return Roster.gather(s.rdzv_endpoint, s.nnodes, s.stages, s.timeout_s)
    except (NodeLost, ValueError) as e:
        raise UsageError(str(e)) from None


def run(args) -> int:
    probe = make_probe(args)
    if isinstance(probe, PipelineSettings):
        return serve(args, probe)
    signal.signal(signal.SIGINT, lambda *_: probe.stop.set())
    signal.signal(signal.SIGTERM, lambda *_: probe.stop.set())
    print(f"run directory: {probe.path}", file=sys.stderr)
    rows = probe.run(lambda d, r: print(f"round {r + 1}: {d}", file=sys.stderr))
    if probe.lost:
        print(
            f"{probe.lost}: the probe stopped; what was measured is in {probe.path}; finish it "
            f"with every node running: python -m bench pipeline --resume {probe.path}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if probe.meta.status == "interrupted":
        print(
            f"interrupted; what was measured is in {probe.path}; finish it with: "
            f"python -m bench pipeline --resume {probe.path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if not args.no_report:
        from bench.report import pipeline

        print(f"report: {pipeline.write_report(probe.path)}", file=sys.stderr)
    print(f"results: {probe.path / 'pipeline.csv'}", file=sys.stderr)
    return EXIT_FAILURES if any(r["status"] not in ("ok", "unavailable") for r in rows) else EXIT_OK
