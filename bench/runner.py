"""Schedules the cases, drives one worker process per framework, and writes every finished case.

The runner never imports torch or jax. A worker that crashes or exceeds the case timeout is
killed, the case is recorded with the tail of the worker's stderr, and a new worker takes the
remaining cases of that framework.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench import envinfo, stats
from bench.devices import row_device
from bench.results import RunDir, read_meta, read_results, read_samples
from bench.schema import FAILED_STATUSES, SCHEMA_VERSION, SchemaError
from bench.sizes import Size
from bench.timing import Budget
from models.registry import REGISTRY, Impl, get, model_module

REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO_TIMEOUT_S = 120.0
PEAK_N = 2048  # the peak matmul is (N, N) @ (N, N), float32
PEAK_BUDGET = Budget(seconds=1.0, min_samples=10, warmup_s=0.3)  # importing a framework (and its first lazy loads) on a cold machine


@dataclass(frozen=True)
class Settings:
    model: str
    impls: list[str]
    sizes: list[Size]
    threads: int
    rounds: int
    budget: Budget
    case_timeout_s: float
    device: str = "cpu"  # cpu or cuda (resolved from --device auto before a run starts)
    tf32: bool = False  # TF32 matmuls on CUDA for torch and jax (--tf32); fp32 otherwise


@dataclass
class CaseState:
    impl: Impl
    size: Size
    status: str = "pending"  # pending until its first round finishes
    error: str = ""
    samples_s: list[float] = field(default_factory=list)  # per step
    round_medians: list[float] = field(default_factory=list)
    done_rounds: set[int] = field(default_factory=set)  # rounds whose samples are on disk
    steps_per_call: int = 1
    first_call_s: float = float("nan")
    loss_rel_err: float = float("nan")
    update_rel_err: float = float("nan")
    peak_rss_mb: float = float("nan")
    ops_per_step: float = float("nan")

    @property
    def key(self) -> tuple[str, str]:
        return self.impl.name, self.size.label


class WorkerFailure(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def framework_device(framework: str, run_device: str) -> str:
    """torch and jax follow the run's device; NumPy, C and the control stay on the CPU."""
    return run_device if framework in ("torch", "jax") else "cpu"


def worker_env(threads: int, device: str) -> dict[str, str]:
    """The environment of every worker: the caller's, plus the thread settings, explicitly."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"  # a CPU run keeps JAX off any GPU the machine has
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerHandle:
    """One worker process and its reply channel."""

    def __init__(self, framework: str, threads: int, log_path: Path, device: str, tf32: bool = False) -> None:
        self.framework = framework
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", framework, str(threads), device, "tf32" if tf32 else "fp32"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=worker_env(threads, device), cwd=REPO_ROOT, start_new_session=True,
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)  # EOF: the worker is gone

    def request(self, msg: dict, timeout_s: float, stop: threading.Event | None = None) -> dict:
        """Send one message, wait for its reply; WorkerFailure if the worker dies, exceeds
        timeout_s, or the run is stopped meanwhile (the worker is then killed)."""
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerFailure("crashed", self._death()) from None
        deadline = time.monotonic() + timeout_s
        while True:
            if stop is not None and stop.is_set():
                self.kill()
                raise WorkerFailure("interrupted", "run stopped during this case")
            try:
                line = self.replies.get(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
                break
            except queue.Empty:
                if time.monotonic() >= deadline:
                    self.kill()
                    raise WorkerFailure("timeout", f"no answer within {timeout_s:g} s; worker killed") from None
        if line is None:
            raise WorkerFailure("crashed", self._death())
        return json.loads(line)

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        return f"worker {how}; stderr: {self.stderr_tail()}"

    def stderr_tail(self, lines: int = 4) -> str:
        self.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 4096))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        all_lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        fatal = [i for i, ln in enumerate(all_lines) if ln.startswith("Fatal Python error")]
        if fatal:  # faulthandler: the error, then the innermost frames (printed most recent first)
            i = fatal[-1]
            frames = [ln for ln in all_lines[i + 1:] if ln.startswith("File ")][:lines]
            return " | ".join([all_lines[i], *frames])
        return " | ".join(all_lines[-lines:]) or "(empty)"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.log.close()


def case_row(st: CaseState, settings: Settings, run_id: str, peaks: dict, workers: dict | None = None) -> dict:
    cfg = st.size.config()
    mod = model_module(st.size.model)
    flops = mod.flops_per_step(cfg)
    s = stats.summarize(np.asarray(st.samples_s))
    spread = stats.round_spread(st.round_medians)
    noisy = stats.noisy_reason(s, spread) if st.samples_s else ""
    return {
        "run_id": run_id, "model": settings.model, "impl": st.impl.name,
        "framework": st.impl.framework, "mode": st.impl.mode, "device": row_device(st.impl.devices, settings.device),
        "size": st.size.label, "sweep": st.size.sweep, **mod.describe(cfg),
        "flops_per_step": flops, "params": mod.n_params(cfg), "threads": settings.threads,
        "threads_used": (workers or {}).get(st.impl.framework, {}).get("threads_used", float("nan")),
        "status": st.status, "error": st.error, "noisy": bool(noisy), "noisy_reason": noisy,
        **s,
        "rounds": len(st.round_medians), "steps_per_call": st.steps_per_call,
        "median_call_s": s["median_s"] * st.steps_per_call,
        "round_spread": spread,
        "ops_per_step": st.ops_per_step,
        "gflops": flops / s["median_s"] / 1e9 if s["n_samples"] and st.impl.framework != "null" else float("nan"),
        "pct_peak": (
            100 * flops / s["median_s"] / 1e9 / peaks[st.impl.framework]["gflops"]
            if s["n_samples"] and "gflops" in peaks.get(st.impl.framework, {}) else float("nan")
        ),
        "first_call_s": st.first_call_s, "loss_rel_err": st.loss_rel_err,
        "update_rel_err": st.update_rel_err, "peak_rss_mb": st.peak_rss_mb,
    }


ProgressFn = Callable[[str, int, int, int], None]  # (description, round, done, total)


class Runner:
    def __init__(self, settings: Settings, run: RunDir, impls: list[Impl], argv: list[str]) -> None:
        self.settings, self.run_dir, self.argv = settings, run, argv
        self.run_id = run.path.name
        self.states = [CaseState(i, s) for s in settings.sizes for i in impls]
        self.workers: dict[str, WorkerHandle] = {}
        self.unavailable: dict[str, str] = {}  # framework -> why it cannot run here
        self.worker_info: dict[str, dict] = {}
        self.stop = threading.Event()  # set by SIGINT/SIGTERM: finish cleanly, keep what was measured
        self.meta = {
            "run_id": self.run_id, "status": "running", "created_utc": _utc(), "finished_utc": None,
            "argv": argv, "settings": _settings_json(settings), "machine": envinfo.collect(),
            "workers": self.worker_info, "peaks": {},
        }
        (run.path / "logs").mkdir(exist_ok=True)

    def rows(self) -> list[dict]:
        return [case_row(st, self.settings, self.run_id, self.meta["peaks"], self.worker_info) for st in self.states]

    def save(self) -> None:
        self.run_dir.write_results(self.rows())

    def worker(self, framework: str) -> WorkerHandle:
        """The live worker of a framework, started (and greeted) if there is none."""
        w = self.workers.get(framework)
        if w is not None and w.proc.poll() is None:
            return w
        s = self.settings
        w = WorkerHandle(framework, s.threads, self.run_dir.path / "logs" / f"{framework}.log",
                         framework_device(framework, s.device), s.tf32)
        self.workers[framework] = w
        hello = w.request({"op": "hello"}, HELLO_TIMEOUT_S, self.stop)
        if not hello.get("ok"):
            raise WorkerFailure("unavailable", hello.get("error", "framework failed to import"))
        self.worker_info[framework] = hello["info"]
        return w

    def measure(self, st: CaseState, rnd: int) -> None:
        s = self.settings
        fw = st.impl.framework
        msg = {
            "op": "case", "model": st.impl.model, "impl": st.impl.name,
            "device": row_device(st.impl.devices, s.device), "config": asdict(st.size.config()),
            "k": st.size.scan_k(), "gate": st.status == "pending", "budget": asdict(s.budget),
        }
        if fw in self.unavailable:
            st.status, st.error = "unavailable", self.unavailable[fw]
            return
        try:
            reply = self.worker(fw).request(msg, s.case_timeout_s, self.stop)
        except WorkerFailure as f:
            self.workers.pop(fw).kill()  # a new worker takes the next case
            if f.status == "interrupted":
                if st.status == "pending":  # a case with finished rounds keeps them and its status
                    st.status, st.error = "interrupted", f.reason
                return
            st.status, st.error = f.status, f.reason
            if f.status == "unavailable":
                self.unavailable[fw] = f.reason
            return
        st.peak_rss_mb = reply.get("peak_rss_mb", st.peak_rss_mb)
        if "first_call_s" in reply and not np.isfinite(st.first_call_s):
            st.first_call_s = reply["first_call_s"]
            st.ops_per_step = reply.get("ops_per_step", st.ops_per_step)
        for k in ("loss_rel_err", "update_rel_err"):
            if k in reply:
                setattr(st, k, reply[k])
        if reply["status"] != "ok" and not reply.get("samples_ns"):
            st.status, st.error = reply["status"], reply.get("error", "")
            return
        k = reply["steps_per_call"]
        ns = reply["samples_ns"]
        st.steps_per_call = k
        self.run_dir.append_samples(
            [(SCHEMA_VERSION, st.impl.name, st.size.label, rnd, i, v, k) for i, v in enumerate(ns)]
        )
        per_step = [v / 1e9 / k for v in ns]
        st.samples_s += per_step
        st.round_medians.append(float(np.median(per_step)))
        st.done_rounds.add(rnd)
        st.status, st.error = reply["status"], reply.get("error", "")

    def measure_peaks(self, progress: ProgressFn | None) -> None:
        """Each framework's float32 matmul peak, in its own worker, before any case."""
        for fw in dict.fromkeys(st.impl.framework for st in self.states if st.status == "pending"):
            if fw == "null" or "gflops" in self.meta["peaks"].get(fw, {}) or self.stop.is_set():
                continue
            if progress:
                progress(f"{fw} matmul peak", 0, 0, 0)
            try:
                reply = self.worker(fw).request(
                    {"op": "peak", "n": PEAK_N, "budget": asdict(PEAK_BUDGET)}, self.settings.case_timeout_s, self.stop
                )
            except WorkerFailure as f:
                if f.status == "unavailable":
                    self.unavailable[fw] = f.reason
                self.workers.pop(fw).kill()
                reply = {"error": f"{f.status}: {f.reason}"}
            self.meta["peaks"][fw] = reply

    def order(self, rnd: int) -> list[CaseState]:
        """Size by size; the implementation order rotates each round so none always goes first."""
        by_size: dict[str, list[CaseState]] = {}
        for st in self.states:
            by_size.setdefault(st.size.label, []).append(st)
        out: list[CaseState] = []
        for group in by_size.values():
            r = rnd % len(group)
            out += group[r:] + group[:r]
        return out

    def run(self, progress: ProgressFn | None = None) -> list[dict]:
        """Measure every (case, round) not yet on disk. Returns the rows; meta["status"] says
        complete or interrupted."""
        s = self.settings
        for st in self.states:
            why = st.impl.unavailable_reason() if st.status == "pending" else ""
            if not why and st.status == "pending" and row_device(st.impl.devices, s.device) not in st.impl.devices:
                why = f"runs on {', '.join(st.impl.devices)} only; this run is on {s.device} (--device)"
            if why:
                st.status, st.error = "unavailable", why
        self.meta["status"] = "running"
        self.run_dir.write_meta(self.meta)
        self.save()
        todo = [(rnd, st) for rnd in range(s.rounds) for st in self.order(rnd) if rnd not in st.done_rounds]
        try:
            self.measure_peaks(progress)
            self.run_dir.write_meta(self.meta)
            for done, (rnd, st) in enumerate(todo):
                if self.stop.is_set():
                    break
                if progress:
                    progress(f"{st.impl.name} {st.size.label}", rnd, done, len(todo))
                if st.status in ("pending", "ok"):
                    self.measure(st, rnd)
                    self.save()
        finally:
            for w in self.workers.values():
                w.stop()
            self.workers.clear()
            if self.stop.is_set():
                for st in self.states:
                    if st.status == "pending":
                        st.status, st.error = "interrupted", "run stopped before this case was measured"
            self.meta["status"] = "interrupted" if self.stop.is_set() else "complete"
            self.meta["finished_utc"] = _utc()
            self.save()
            if self.meta["status"] == "complete":
                self.run_dir.compress_samples()
            self.run_dir.write_meta(self.meta)
        if progress:
            progress("done", s.rounds - 1, len(todo), len(todo))
        return self.rows()

    @classmethod
    def resume(cls, run: RunDir, argv: list[str]) -> Runner:
        """A runner for an interrupted run directory: same settings, only the missing rounds.

        Raises SchemaError if the directory is not a resumable run."""
        meta = read_meta(run.path)
        if meta.get("status") == "complete":
            raise SchemaError(f"{run.path} is complete; nothing to resume")
        if not run.samples_path.is_file():
            raise SchemaError(f"{run.path} has no samples.csv to append to")
        cfg = meta["settings"]
        settings = Settings(
            model=cfg["model"], impls=cfg["impls"],
            sizes=[Size.from_json(z) for z in cfg["sizes"]],
            threads=cfg["threads"], rounds=cfg["rounds"], budget=Budget(**cfg["budget"]),
            case_timeout_s=cfg["case_timeout_s"], device=cfg["device"], tf32=cfg.get("tf32", False),
        )
        unknown = [n for n in settings.impls if n not in REGISTRY.get(settings.model, {})]
        if unknown:
            raise SchemaError(f"{run.path} names {settings.model} implementations unknown here: {', '.join(unknown)}")
        runner = cls.__new__(cls)
        runner.settings, runner.run_dir, runner.argv = settings, run, argv
        runner.run_id = run.path.name
        runner.states = [CaseState(get(settings.model, i), z) for z in settings.sizes for i in settings.impls]
        runner.workers, runner.unavailable = {}, {}
        runner.stop = threading.Event()
        runner.meta = meta
        runner.worker_info = meta.setdefault("workers", {})
        meta.setdefault("resumed", []).append({"utc": _utc(), "argv": argv})
        _restore(runner.states, read_results(run.path), read_samples(run.path))
        return runner


def _restore(states: list[CaseState], results, samples) -> None:
    """Case states from the files of an interrupted run."""
    rows = {(r["impl"], r["size"]): r for r in results.to_dict("records")}
    groups = {k: g for k, g in samples.groupby(["impl", "size", "round"])}
    for st in states:
        r = rows.get(st.key)
        if r is None:
            continue
        st.status = "pending" if r["status"] == "interrupted" else r["status"]
        st.error = "" if st.status == "pending" else (r["error"] if isinstance(r["error"], str) else "")
        for name in ("first_call_s", "loss_rel_err", "update_rel_err", "peak_rss_mb", "ops_per_step"):
            setattr(st, name, float(r[name]))
        st.steps_per_call = int(r["steps_per_call"])
        for (impl, size, rnd), g in sorted(groups.items()):
            if (impl, size) == st.key:
                per_step = (g["call_ns"] / 1e9 / g["steps_per_call"]).tolist()
                st.samples_s += per_step
                st.round_medians.append(float(np.median(per_step)))
                st.done_rounds.add(int(rnd))


def exit_status(rows: list[dict]) -> int:
    """0: every row ok or unavailable; 1: finished, but some case failed."""
    return 1 if any(r["status"] in FAILED_STATUSES for r in rows) else 0


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _settings_json(s: Settings) -> dict:
    d = asdict(s)
    d["sizes"] = [z.to_json() for z in s.sizes]
    d["schema_version"] = SCHEMA_VERSION
    return d
