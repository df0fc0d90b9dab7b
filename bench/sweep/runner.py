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

from bench import envinfo, frameworks, kernels, protocol
from bench.results import RunDir, read_meta, read_results, read_rounds, read_samples
from bench.schema import FAILED_STATUSES, SCHEMA_VERSION, SchemaError
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
        self, settings: Settings, run: RunDir, argv: list[str], meta: dict | None = None
    ) -> None:
        """A new run, or (meta: an interrupted run's run.json) the rest of one."""
        self.settings, self.run_dir = settings, run
        self.states = [
            CaseState(get(settings.model, i), z) for z in settings.sizes for i in settings.impls
        ]
        # set by SIGINT/SIGTERM: finish cleanly, keep what was measured
        self.stop = threading.Event()
        if meta is None:
            meta = new_meta(settings, run, argv)
        else:
            meta.setdefault("resumed", []).append({"utc": envinfo.utc_now(), "argv": argv})
            restore(
                self.states,
                read_results(run.path),
                read_samples(run.path),
                read_rounds(run.path),
                meta.get("case_info", {}),
            )
        self.meta = meta
        self.noise = envinfo.noise_start()  # of this part of the run (a resume records its own)
        (run.path / "logs").mkdir(exist_ok=True)
        self.pool, self.harness_cpus = make_pool(settings, run, self.stop, meta)
        self.cost_s: dict[
            tuple[str, str], list[float]
        ] = {}  # wall seconds of each case's rounds here
        self.pool.info = meta["workers"]  # what each worker reports lands in run.json
        # told each kernel warning once, when the workers know it
        self.warn: Callable[[str], None] = lambda w: None
        self.table = RowCache()

    @classmethod
    def resume(cls, run: RunDir, argv: list[str]) -> Runner:
        """A runner for an interrupted run directory: same settings, only the missing rounds.

        Raises SchemaError if the directory is not a resumable run."""
        meta = resumable(run)
        return cls(Settings.from_json(meta["settings"]), run, argv, meta)

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
            round_row, ns = done
            self.run_dir.append_samples(
                [
                    (SCHEMA_VERSION, st.impl.name, st.size.label, rnd, i, v, reply.steps_per_call)
                    for i, v in enumerate(ns)
                ]
            )
            self.run_dir.append_rounds([round_row])
        return bool(done) or st.status != "ok"

    def run(self, progress: ProgressFn | None = None) -> list[dict]:
        """Measure every (case, round) not yet on disk: the base rounds, then the extra rounds of the cases whose CI
        is still wide (decided once, run.json's extra_rounds). The rows; meta["status"]: complete or interrupted."""
        mark_unavailable(self.states, self.settings.device)
        self.meta["status"] = "running"
        self.run_dir.write_meta(self.meta)
        self.run_dir.write_results(self.rows())
        s, one, t0 = self.settings, self.settings.live_workers == "one", time.monotonic()
        try:
            with frameworks.pinned(self.harness_cpus):  # the runner's threads off the workers' CPUs
                for w in measure_peaks(
                    self.pool, self.states, self.meta, s.case_timeout_s, self.stop, progress
                ):
                    self.warn(w)
                self.run_dir.write_meta(self.meta)
                t_base = time.monotonic()  # the base rounds start
                self.measure_all(chunked(plan(self.states, s.rounds, one), s.chunks, one), progress)
                if not self.stop.is_set() and s.most_rounds > s.rounds:
                    extra = self.extra_rounds(time.monotonic() - t0, time.monotonic() - t_base)
                    self.measure_all(
                        chunked(plan(self.states, extra, one, start=s.rounds), s.chunks, one),
                        progress,
                    )
        finally:
            self.finish()
        return self.rows()

    def extra_rounds(self, elapsed_s: float, base_wall_s: float | None = None) -> dict:
        """{case key: total rounds} of the cases that get extra rounds: run.json's, when a resumed run
        decided them already, else decided now from the base rounds (their wall time: base_wall_s)."""
        if "extra_rounds" not in self.meta:
            got = extension_within(
                self.states, self.settings, self.cost_s, elapsed_s, self.pool.start_s, base_wall_s
            )
            self.meta["extra_rounds"] = {f"{i}|{z}": n for (i, z), n in got.items()}
            self.run_dir.write_meta(self.meta)
        return {tuple(k.split("|", 1)): n for k, n in self.meta["extra_rounds"].items()}

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
                and rnd not in st.done_rounds
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

    def finish(self) -> None:
        """Stop the workers and write the final state of every file."""
        self.close_workers()
        if self.stop.is_set():
            for st in self.states:
                if st.status == "pending":
                    st.status, st.error = "interrupted", "run stopped before this case was measured"
        self.meta["status"] = "interrupted" if self.stop.is_set() else "complete"
        self.meta["finished_utc"] = envinfo.utc_now()
        self.meta["noise"] = envinfo.noise_end(self.noise)
        self.run_dir.write_results(self.rows())
        if self.meta["status"] == "complete":
            self.run_dir.compress_samples()
        self.run_dir.write_meta(self.meta)


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
    pool: WorkerPool, fw: str, states: list[CaseState], timeout_s: float, meta: dict
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
            meta.setdefault("case_info", {}).setdefault(st.impl.name, {})[st.size.label] = (
                reply.info
            )
            changed.append(st)
        elif reply.status == "error" and st.status == "ok":  # a failed gate keeps its own status
            st.status, st.error = "error", reply.error
            changed.append(st)
    return changed


def new_meta(settings: Settings, run: RunDir, argv: list[str]) -> dict:
    return {
        "run_id": run.path.name,
        "status": "running",
        "created_utc": envinfo.utc_now(),
        "finished_utc": None,
        "argv": argv,
        "settings": settings.to_json(),
        "machine": envinfo.collect(),
        "workers": {},
        "peaks": {},
    }


def make_pool(
    settings: Settings, run: RunDir, stop: threading.Event, meta: dict
) -> tuple[WorkerPool, list | None]:
    """(the run's workers, the harness's CPUs): the workers' environment (--native-kernels:
    what it cleared goes to run.json) and CPUs (bench/frameworks.cpu_layout)."""
    env, cleared = kernels.native_env(dict(os.environ)) if settings.native_kernels else (None, {})
    if settings.native_kernels:
        meta["native_kernels"] = {"cleared_for_workers": cleared}
    harness, workers = frameworks.cpu_layout(settings.threads, settings.harness_cpu)
    return WorkerPool(
        settings.threads, settings.device, settings.tf32, run.path / "logs", stop, env, workers
    ), harness


def measure_peaks(
    pool: WorkerPool,
    states: list[CaseState],
    meta: dict,
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
        if "gflops" in meta["peaks"].get(fw, {}) or stop.is_set():
            continue
        if progress:
            progress(f"{fw} matmul peak", 0, 0, 0)
        meta["peaks"][fw] = ask_peak(pool, fw, timeout_s)
    return new_kernel_warnings(meta, pool.base_env)


def resumable(run: RunDir) -> dict:
    """The run.json of a run this harness can finish (its settings name only implementations known
    here); SchemaError naming why not."""
    meta = read_meta(run.path)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"{run.path} was written by schema {meta.get('schema_version')}; resume it with the "
            f"harness that made it (this one writes {SCHEMA_VERSION})"
        )
    if meta.get("status") == "complete":
        raise SchemaError(f"{run.path} is complete; nothing to resume")
    if not run.samples_path.is_file():
        raise SchemaError(f"{run.path} has no samples.csv to append to")
    settings = Settings.from_json(meta["settings"])
    unknown = [n for n in settings.impls if n not in impls(settings.model)]
    if unknown:
        raise SchemaError(
            f"{run.path} names {settings.model} implementations unknown here: {', '.join(unknown)}"
        )
    meta.setdefault("workers", {})
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


def new_kernel_warnings(meta: dict, worker_env: dict | None) -> list[str]:
    """Which library runs below the CPU, from what every started worker reported; the warnings
    not yet in run.json's kernel_warnings are added there and returned."""
    found = kernels.handicaps(
        meta["machine"].get("cpu_isa") or kernels.cpu_isa(),
        {fw: i.get("kernels", {}) for fw, i in meta["workers"].items()},
        kernels.kernel_env(worker_env),
        frameworks.blas_users("openblas"),
    )
    told = meta.setdefault("kernel_warnings", [])
    new = [w for w in found if w not in told]
    told += new
    return new


def exit_status(rows: list[dict]) -> int:
    """0: every row ok or unavailable; 1: finished, but some case failed."""
    return 1 if any(r["status"] in FAILED_STATUSES for r in rows) else 0
