"""One worker process and its reply channel: start, request with a deadline, kill, stop.

A worker that dies, exceeds its deadline, or is asked to stop (the run's stop flag) raises
WorkerFailure with a status and a one-line reason (the tail of its stderr for a crash).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import frameworks, protocol

REPO_ROOT = Path(__file__).resolve().parent.parent


class WorkerFailure(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def worker_env(threads: int, device: str) -> dict[str, str]:
    """The environment of every worker: the caller's, plus the thread settings, explicitly."""
    env = {**os.environ, **frameworks.thread_env(threads, device), **frameworks.compile_cache_env()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerHandle:
    """One worker process (its own session, so a kill takes its children too)."""

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

    def request(self, msg, reply_type, timeout_s: float, stop: threading.Event | None = None):
        """Send one message, wait for its reply (of reply_type); WorkerFailure if the worker dies,
        exceeds timeout_s, or the run is stopped meanwhile (the worker is then killed)."""
        try:
            self.proc.stdin.write((protocol.encode(msg) + "\n").encode())
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
        return protocol.decode_reply(reply_type, line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
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
        if self.alive():
            try:
                self.proc.stdin.write((protocol.encode(protocol.Exit()) + "\n").encode())
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.log.close()


class WorkerPool:
    """One live worker per framework, started and greeted on demand, replaced after a failure.
    A framework that cannot start here fails every later request at once."""

    HELLO_TIMEOUT_S = 120.0  # importing a framework (and its first lazy loads) on a cold machine

    def __init__(self, threads: int, device: str, tf32: bool, logs: Path, stop: threading.Event) -> None:
        self.threads, self.device, self.tf32, self.logs, self.stop = threads, device, tf32, logs, stop
        self.workers: dict[str, WorkerHandle] = {}
        self.unavailable: dict[str, str] = {}  # framework -> why it cannot run here
        self.info: dict[str, dict] = {}  # framework -> what its worker reported at hello

    def worker(self, framework: str) -> WorkerHandle:
        w = self.workers.get(framework)
        if w is not None and w.alive():
            return w
        w = WorkerHandle(framework, self.threads, self.logs / f"{framework}.log",
                         frameworks.device_of(framework, self.device), self.tf32)
        self.workers[framework] = w
        hello = w.request(protocol.Hello(), protocol.HelloReply, self.HELLO_TIMEOUT_S, self.stop)
        if not hello.ok:
            raise WorkerFailure("unavailable", hello.error or "framework failed to import")
        self.info[framework] = hello.info
        return w

    def ask(self, framework: str, msg, reply_type, timeout_s: float):
        """A request to the framework's worker; WorkerFailure (the worker is then gone) if it fails."""
        if framework in self.unavailable:
            raise WorkerFailure("unavailable", self.unavailable[framework])
        try:
            return self.worker(framework).request(msg, reply_type, timeout_s, self.stop)
        except WorkerFailure as f:
            self.workers.pop(framework).kill()
            if f.status == "unavailable":
                self.unavailable[framework] = f.reason
            raise

    def close(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.workers.clear()
