"""The sweep's workers: one child process per framework (bench/sweep/worker.py), a request and its
reply with a deadline, replaced after a failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import frameworks, protocol
from bench.supervisor import Child, ChildFailure, Launch, wait_line


class WorkerHandle(Child):
    """One sweep worker (bench/sweep/worker.py): a request, then its reply, with a deadline."""

    def __init__(
        self,
        framework: str,
        threads: int,
        log_path: Path,
        device: str,
        tf32: bool = False,
        base_env: dict[str, str] | None = None,
        cpus: list[int] | None = None,
    ) -> None:
        env = {**frameworks.thread_env(threads, device), **frameworks.compile_cache_env()}
        args = [framework, str(threads), device, "tf32" if tf32 else "fp32"] + (
            [",".join(map(str, cpus))] if cpus else []
        )
        super().__init__(
            Launch("bench.sweep.worker", args, env, base_env, stdin=True), log_path, "worker"
        )
        self.framework = framework

    def request(self, msg, reply_type, timeout_s: float, stop: threading.Event | None = None):
        """Send one message, wait for its reply (of reply_type); ChildFailure if the worker dies,
        exceeds timeout_s, or the run is stopped meanwhile (the worker is then killed)."""
        self.send(msg)
        try:
            _, line = wait_line(self.lines, timeout_s, stop, "worker")
        except ChildFailure:
            self.kill()
            raise
        if line is None:
            raise ChildFailure("crashed", self.death())
        return protocol.decode_reply(reply_type, line)

    def stop(self) -> None:
        self.finish(protocol.Exit())


class WorkerPool:
    """One live worker per framework, started and greeted on demand, replaced after a failure.
    A framework that cannot start here fails every later request at once."""

    HELLO_TIMEOUT_S = 120.0  # importing a framework (and its first lazy loads) on a cold machine

    def __init__(
        self,
        threads: int,
        device: str,
        tf32: bool,
        logs: Path,
        stop: threading.Event,
        base_env: dict[str, str] | None = None,
        cpus: list[int] | None = None,
    ) -> None:
        self.threads, self.device, self.tf32, self.logs, self.stop = (
            threads,
            device,
            tf32,
            logs,
            stop,
        )
        self.cpus = (
            cpus  # the workers' CPUs (bench/frameworks.cpu_layout); None: the first `threads`
        )
        self.base_env = (
            base_env  # the workers' environment before their settings (None: this process's)
        )
        self.workers: dict[str, WorkerHandle] = {}
        self.unavailable: dict[str, str] = {}  # framework -> why it cannot run here
        # told what each framework's worker reports at its hello (threads, libraries, kernels)
        self.on_hello: Callable[[str, dict], None] = lambda framework, info: None
        self.start_s: dict[
            str, float
        ] = {}  # framework -> seconds from its worker's start to its hello

    def worker(self, framework: str) -> WorkerHandle:
        w = self.workers.get(framework)
        if w is not None and w.alive():
            return w
        t0 = time.monotonic()
        w = WorkerHandle(
            framework,
            self.threads,
            self.logs / f"{framework}.log",
            frameworks.device_of(framework, self.device),
            self.tf32,
            self.base_env,
            self.cpus,
        )
        self.workers[framework] = w
        hello = w.request(protocol.Hello(), protocol.HelloReply, self.HELLO_TIMEOUT_S, self.stop)
        self.start_s[framework] = time.monotonic() - t0
        if not hello.ok:
            raise ChildFailure("unavailable", hello.error or "framework failed to import")
        self.on_hello(framework, hello.info)
        return w

    def ask(self, framework: str, msg, reply_type, timeout_s: float):
        """A request to the framework's worker; ChildFailure (the worker is then gone) if it fails."""
        if framework in self.unavailable:
            raise ChildFailure("unavailable", self.unavailable[framework])
        try:
            return self.worker(framework).request(msg, reply_type, timeout_s, self.stop)
        except ChildFailure as f:
            self.workers.pop(framework).kill()
            if f.status == "unavailable":
                self.unavailable[framework] = f.reason
            raise

    def live(self) -> list[str]:
        """The frameworks whose worker is alive."""
        return [fw for fw, w in self.workers.items() if w.alive()]

    def close(self, keep: str | None = None) -> None:
        """Stop every worker (but `keep`'s framework's)."""
        for fw in [fw for fw in self.workers if fw != keep]:
            self.workers.pop(fw).stop()
