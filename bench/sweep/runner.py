"""Schedules the cases, drives one worker process per framework, and writes every finished case.

The runner never imports torch or jax. A worker that crashes or exceeds the case timeout is
killed, the case is recorded with the tail of the worker's stderr, and a new worker takes the
remaining cases of that framework.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from bench import campaign, frameworks, kernels, protocol
from bench.results import RunDir, read_results, read_rounds, read_samples
from bench.runmeta import RunMeta
from bench.schema import FAILED_STATUSES, SchemaError
from bench.supervisor import ChildFailure
from bench.sweep.cases import CaseState, RowCache, restore
from bench.sweep.plan import chunked, extension_within, mark_unavailable, plan
from bench.sweep.pool import WorkerPool
from bench.sweep.settings import Settings
from bench.timing import Budget
from models.registry import get, impls

PEAK_N = 2048  # the peak matmul is (N, N) @ (N, N), float32
PEAK_BUDGET = Budget(seconds=1.0, min_samples=10, warmup_s=0.3)
QUICK_PEAK = (
    256,
    Budget(seconds=0.02, min_samples=3, warmup_s=0.01),
)  # BENCH_QUICK_PEAK=1: the tests' runs


def peak_request() -> protocol.PeakRequest:
    """The matmul every framework's peak is timed on; a small one where BENCH_QUICK_PEAK is set (the
    test suite sets it: its runs check the path, not the machine; run.json's peaks record n)."""
    n, budget = QUICK_PEAK if os.environ.get("BENCH_QUICK_PEAK") else (PEAK_N, PEAK_BUDGET)
    return protocol.PeakRequest(n=n, budget=asdict(budget))


ProgressFn = Callable[[str, int, int, int], None]  # (description, round, done, total)


class Runner:
    def __init__(
        self, settings: Settings, run: RunDir, argv: list[str], meta: RunMeta | None = None
    ) -> None:
        """A new run, or (meta: an interrupted run's run.json) the rest of one."""
        self.settings, self.run_dir = settings, run
        self.states = [
            CaseState(get(settings.model, i), z) for z in settings.sizes for i in settings.impls
        ]
        # set by SIGINT/SIGTERM: finish cleanly, keep what was measured
        self.stop = threading.Event()
        if meta is None:
            meta = RunMeta.new(run.path.name, "sweep", settings.to_json(), argv)
        else:
            meta.resume(argv)
            restore(
                self.states,
                read_results(run.path),
                read_samples(run.path),
                read_rounds(run.path),
                meta.case_info,
            )
        self.meta = meta
        (run.path / "logs").mkdir(exist_ok=True)
        self.pool, self.harness_cpus = make_pool(settings, run, self.stop, meta)
        self.cost_s: dict[
            tuple[str, str], list[float]
        ] = {}  # wall seconds of each case's rounds here
        self.pool.on_hello = self.worker_reported
        # told each kernel warning once, when the workers know it
        self.warn: Callable[[str], None] = lambda w: None
        self.table = RowCache()

    def worker_reported(self, framework: str, info: dict) -> None:
        """A worker's hello: what it uses goes to run.json, and every row names its threads."""
        self.meta.workers[framework] = info
        self.table.invalidate()

    @classmethod
    def resume(cls, run: RunDir, argv: list[str]) -> Runner:
        """A runner for an interrupted run directory: same settings, only the missing rounds.

        Raises SchemaError if the directory is not a resumable run."""
        meta = resumable(run)
        return cls(Settings.from_json(meta.settings), run, argv, meta)

    def rows(self, changed: CaseState | None = None) -> list[dict]:
        return self.table.rows(self.states, self.settings, self.meta, changed)

    def measure(self, st: CaseState, rnd: int, chunk: int = 0) -> bool:
        """One sampling chunk of one round of one case: a request to its worker, the reply folded into
        the case; the round's samples go to disk after its last chunk. Whether its row changed (a
        round done, or the case failed)."""
        msg, t0 = case_request(st, self.settings, chunk), time.monotonic()
        try:
            reply = self.pool.ask(
                st.impl.framework, msg, protocol.CaseReply, self.settings.case_timeout_s
            )
            add_cost(self.cost_s.setdefault(st.key, []), chunk, time.monotonic() - t0)
        except ChildFailure as f:
            if (
                f.status != "interrupted" or st.status == "pending"
            ):  # finished rounds keep their status
                st.status, st.error = f.status, f.reason
            return True
        done = st.fold(reply, rnd, chunk, reply.last)
        if done:
            self.run_dir.append_round(*done)
        return bool(done) or st.status != "ok"

    def run(self, progress: ProgressFn | None = None) -> list[dict]:
        """Measure every (case, round) not yet on disk: the peaks, the base rounds, then the extra
        rounds of the cases whose CI is still wide (bench/campaign.py). The rows; meta.status:
        complete or interrupted."""
        mark_unavailable(self.states, self.settings.device)
        self.t0 = time.monotonic()
        stages = campaign.Stages(
            lambda: self.base_rounds(progress),
            self.plan_extra,
            lambda extra: self.extra_rounds(extra, progress),
            self.finish,
        )
        with frameworks.pinned(self.harness_cpus):  # the runner's threads off the workers' CPUs
            campaign.run(self.run_dir, self.meta, self.stop, stages)
        return self.rows()

    def base_rounds(self, progress: ProgressFn | None) -> None:
        s, one = self.settings, self.settings.live_workers == "one"
        self.run_dir.write_results(self.rows())
        for w in measure_peaks(
            self.pool, self.states, self.meta, s.case_timeout_s, self.stop, progress
        ):
            self.warn(w)
        self.run_dir.write_meta(self.meta)
        self.t_base = time.monotonic()  # the base rounds start
        self.measure_all(chunked(plan(self.states, s.rounds, one), s.chunks, one), progress)

    def plan_extra(self) -> dict[str, int]:
        """{"impl|size": rounds in all} of the cases that get extra rounds, decided from the base
        rounds (their wall time, and the run's elapsed time against its budget)."""
        if self.settings.most_rounds <= self.settings.rounds:
            return {}
        now = time.monotonic()
        got = extension_within(
            self.states,
            self.settings,
            self.cost_s,
            now - self.t0,
            self.pool.start_s,
            now - self.t_base,
        )
        return {f"{i}|{z}": n for (i, z), n in got.items()}

    def extra_rounds(self, extra: dict[str, int], progress: ProgressFn | None) -> None:
        s, one = self.settings, self.settings.live_workers == "one"
        total = {tuple(k.split("|", 1)): n for k, n in extra.items()}
        todo = plan(self.states, total, one, start=s.rounds)
        self.measure_all(chunked(todo, s.chunks, one), progress)

    def measure_all(self, todo: list, progress: ProgressFn | None) -> None:
        self.close_workers()  # a new stage starts a new round: fresh workers
        for done, (rnd, st, chunk) in enumerate(todo):
            if self.stop.is_set():
                break
            if done and rnd != todo[done - 1][0]:
                # each round in fresh worker processes: the unit of replication
                self.close_workers()
            elif self.settings.live_workers == "one":
                # no idle worker alive beside the measured one
                self.close_workers(keep=st.impl.framework)
            if progress:
                turn = (
                    f" (turn {chunk + 1}/{self.settings.chunks})"
                    if self.settings.chunks > 1
                    else ""
                )
                progress(f"{st.impl.name} {st.size.label}{turn}", rnd, done, len(todo))
            if (
                st.status in ("pending", "ok")
                and rnd not in st.rounds.done
                and self.measure(st, rnd, chunk)
            ):
                self.run_dir.write_results(self.rows(changed=st))

    def close_workers(self, keep: str | None = None) -> None:
        """Stop every worker (but keep's), each after describing its cases not yet described: after
        their round's timing, as describing a torch step resets Dynamo (describe_cases)."""
        for fw in [fw for fw in self.pool.live() if fw != keep and not self.stop.is_set()]:
            for st in describe_cases(
                self.pool, fw, self.states, self.settings.case_timeout_s, self.meta
            ):
                self.run_dir.write_results(self.rows(changed=st))
        self.pool.close(keep)

    def finish(self, stopped: bool) -> None:
        """Stop the workers and write the final state of every file (run.json: the campaign)."""
        self.close_workers()
        if stopped:
            for st in self.states:
                if st.status == "pending":
                    st.status, st.error = "interrupted", "run stopped before this case was measured"
        self.run_dir.write_results(self.rows())
        if not stopped:
            self.run_dir.compress_samples()


def add_cost(cost: list[float], chunk: int, seconds: float) -> None:
    """A case's wall seconds per round (with its worker's start, if first): a round's first chunk
    starts its entry, each later chunk adds to it."""
    if chunk and cost:
        cost[-1] += seconds
    else:
        cost.append(seconds)


def case_request(st: CaseState, s: Settings, chunk: int) -> protocol.CaseRequest:
    """The request for one sampling chunk of a case's round (its first gates a pending case)."""
    return protocol.CaseRequest(
        model=st.impl.model,
        impl=st.impl.name,
        device=frameworks.run_device(st.impl, s.device),
        config=asdict(st.size.config()),
        steps_per_call=st.size.steps_per_call(),
        gate=st.status == "pending",
        budget=asdict(s.budget),
        chunks=s.chunks,
        chunk=chunk,
    )


DESCRIBED = ("ok", "mismatch", "diverged")  # statuses of a case its worker still holds built


def describe_cases(
    pool: WorkerPool, fw: str, states: list[CaseState], timeout_s: float, meta: RunMeta
) -> list[CaseState]:
    """The op count and description (run.json's case_info) of fw's cases that have none, from fw's
    live worker, once the round's timing is done there: describing a torch step resets Dynamo, so
    every step compiled in that process would compile again. The cases it did not build stay
    undescribed until a later round; a description that fails fails its case, unless its gate
    failed first (a full-graph torch step that is not one graph: models/torch_util.py). The cases
    that changed."""
    changed = []
    for st in [
        st for st in states if st.impl.framework == fw and not st.info and st.status in DESCRIBED
    ]:
        msg = protocol.DescribeRequest(
            model=st.impl.model, impl=st.impl.name, config=asdict(st.size.config())
        )
        try:
            reply = pool.ask(fw, msg, protocol.DescribeReply, timeout_s)
        except ChildFailure as f:
            if f.status != "interrupted" and st.status == "ok":
                st.status, st.error = f.status, f.reason
                changed.append(st)
            break  # the worker is gone, and its built cases with it
        if reply.status == "ok":
            st.framework_ops_per_step, st.info = reply.ops_per_step, reply.info
            meta.case_info.setdefault(st.impl.name, {})[st.size.label] = reply.info
            changed.append(st)
        elif reply.status == "error" and st.status == "ok":  # a failed gate keeps its own status
            st.status, st.error = "error", reply.error
            changed.append(st)
    return changed


def make_pool(
    settings: Settings, run: RunDir, stop: threading.Event, meta: RunMeta
) -> tuple[WorkerPool, list | None]:
    """(the run's workers, the harness's CPUs): the workers' environment (--native-kernels:
    what it cleared goes to run.json) and CPUs (bench/frameworks.cpu_layout)."""
    env, cleared = kernels.native_env(dict(os.environ)) if settings.native_kernels else (None, {})
    if settings.native_kernels:
        meta.native_kernels = {"cleared_for_workers": cleared}
    harness, workers = frameworks.cpu_layout(settings.threads, settings.harness_cpu)
    return WorkerPool(
        settings.threads, settings.device, settings.tf32, run.path / "logs", stop, env, workers
    ), harness


def measure_peaks(
    pool: WorkerPool,
    states: list[CaseState],
    meta: RunMeta,
    timeout_s: float,
    stop: threading.Event,
    progress: ProgressFn | None,
) -> list[str]:
    """Each framework's float32 matmul peak, in its own worker, before any case, into meta["peaks"];
    returns the kernel warnings the workers' reports raise."""
    pending = [
        st.impl.framework for st in states if st.status == "pending" and st.impl.role != "control"
    ]
    for fw in dict.fromkeys(pending):
        if "gflops" in meta.peaks.get(fw, {}) or stop.is_set():
            continue
        if progress:
            progress(f"{fw} matmul peak", 0, 0, 0)
        meta.peaks[fw] = ask_peak(pool, fw, timeout_s)
    return new_kernel_warnings(meta, pool.base_env)


def resumable(run: RunDir) -> RunMeta:
    """The record of a run this harness can finish (its settings name only implementations known
    here); SchemaError naming why not."""
    meta = run.resumable("sweep", "samples.csv")
    settings = Settings.from_json(meta.settings)
    unknown = [n for n in settings.impls if n not in impls(settings.model)]
    if unknown:
        raise SchemaError(
            f"{run.path} names {settings.model} implementations unknown here: {', '.join(unknown)}"
        )
    return meta


def ask_peak(pool: WorkerPool, fw: str, timeout_s: float) -> dict:
    """The framework's matmul peak from its worker, or the error."""
    msg = peak_request()
    try:
        reply = pool.ask(fw, msg, protocol.PeakReply, timeout_s)
    except ChildFailure as f:
        return {"error": f"{f.status}: {f.reason}"}
    return (
        {"error": reply.error}
        if reply.error
        else {**reply.result, "peak_rss_mb": reply.peak_rss_mb}
    )


def new_kernel_warnings(meta: RunMeta, worker_env: dict | None) -> list[str]:
    """Which library runs below the CPU, from what every started worker reported; the warnings
    not yet in run.json's kernel_warnings are added there and returned."""
    found = kernels.handicaps(
        meta.machine.get("cpu_isa") or kernels.cpu_isa(),
        {fw: i.get("kernels", {}) for fw, i in meta.workers.items()},
        kernels.kernel_env(worker_env),
        frameworks.blas_users("openblas"),
    )
    new = [w for w in found if w not in meta.kernel_warnings]
    meta.kernel_warnings += new
    return new


def exit_status(rows: list[dict]) -> int:
    """0: every row ok or unavailable; 1: finished, but some case failed."""
    return 1 if any(r["status"] in FAILED_STATUSES for r in rows) else 0
