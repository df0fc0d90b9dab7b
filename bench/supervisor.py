"""Every process the harness starts, in one place: long-lived children (sweep workers, pipeline
ranks: bench/sweep/pool.py, bench/pipeline/group.py) and one-shot queries (git, nvidia-smi, a
framework probe).

A child runs in its own session, so a kill takes its children too; a thread reads its stdout
lines (one JSON message each, bench/protocol.py) into a queue; its stderr goes to a log whose
tail explains a death. A child that dies, exceeds its deadline, or is asked to stop raises
ChildFailure with a status and a one-line reason.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import protocol

REPO_ROOT = Path(__file__).resolve().parent.parent


class ChildFailure(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def child_env(extra: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (or `base`), the repository on the path, unbuffered output, plus `extra`."""
    env = {**(os.environ if base is None else base), **extra}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_program(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """(exit code, stdout) of a program that runs to its end (the C pipeline's mpiexec), its stderr
    on this process's; (-1, '') when it cannot start, (124, what it printed) when it times out."""
    try:
        p = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout_s,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    except OSError:
        return -1, ""
    return p.returncode, p.stdout


def query(args: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
    """(exit code, stdout) of a short command; (-1, '') when it cannot run or times out."""
    try:
        p = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return -1, ""
    return p.returncode, p.stdout


def python_query(
    code: str, timeout_s: float = 180.0, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """query() of a Python snippet in a fresh interpreter (the parent never imports torch or jax)."""
    try:
        p = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=child_env(env or {}),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return -1, f"probe failed: {e}"
    return p.returncode, p.stdout


@dataclass(frozen=True)
class Launch:
    """What a child runs: `python -m module args`, with `env` added to the environment (of `base`,
    or this process's), and a stdin to send to or none."""

    module: str
    args: list[str]
    env: dict[str, str]
    base: dict[str, str] | None = None
    stdin: bool = False


class Child:
    """One child process and its reply lines. `sink` (shared by a group) receives (tag, line),
    and (tag, None) at EOF."""

    def __init__(
        self,
        launch: Launch,
        log_path: Path,
        who: str,
        sink: queue.Queue | None = None,
        tag: object = None,
    ) -> None:
        self.log_path, self.who, self.tag = log_path, who, tag
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", launch.module, *launch.args],
            stdin=subprocess.PIPE if launch.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=child_env(launch.env, launch.base),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self.lines: queue.Queue = sink if sink is not None else queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((self.tag, line))
        self.lines.put((self.tag, None))  # EOF: the child is gone

    def send(self, msg) -> None:
        try:
            self.proc.stdin.write((protocol.encode(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ChildFailure("crashed", self.death()) from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def death(self) -> str:
        """How the child ended, with the tail of its stderr."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        return f"{self.who} {how_it_ended(code)}; stderr: {self.stderr_tail()}"

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
            frames = [ln for ln in all_lines[i + 1 :] if ln.startswith("File ")][:lines]
            return " | ".join([all_lines[i], *frames])
        return " | ".join(all_lines[-lines:]) or "(empty)"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        self.log.close()

    def finish(self, goodbye) -> None:
        """Ask the child to exit (the goodbye message), give it 10 s, then close."""
        if self.alive():
            try:
                self.send(goodbye)
                self.proc.wait(timeout=10)
            except (ChildFailure, subprocess.TimeoutExpired):
                pass
        self.close()


def how_it_ended(code: int | None) -> str:
    return (
        f"killed by {signal.Signals(-code).name}"
        if code is not None and code < 0
        else f"exited with code {code}"
    )


def wait_line(
    lines: queue.Queue, timeout_s: float, stop: threading.Event | None, killed: str
) -> tuple:
    """The next (tag, line) within timeout_s; ChildFailure on a timeout or a stop request (the
    caller then kills what `killed` names)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if stop is not None and stop.is_set():
            raise ChildFailure("interrupted", "run stopped during this case")
        try:
            return lines.get(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() >= deadline:
                raise ChildFailure(
                    "timeout", f"no answer within {timeout_s:g} s; {killed} killed"
                ) from None
