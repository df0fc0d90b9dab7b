"""The timed loop. Runs inside a worker; `call` must return only when its work is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    seconds: float = 0.05  # sampling time per case and round (one worker process)
    min_samples: int = 5  # never fewer, whatever the time
    max_samples: int = 5000  # never more (sub-microsecond calls would give millions)
    warmup_s: float = 0.05  # warm-up time after the first call, at least 2 calls


# untimed calls before a case's later chunk (at least one): the caches its neighbours took
REWARM_S = 0.002


def warm_up(call: Callable[[], None], budget: Budget, min_calls: int = 2) -> int:
    """Untimed calls: at least min_calls, and for budget.warmup_s. The calls made."""
    n, end = 0, time.perf_counter() + budget.warmup_s
    while n < min_calls or time.perf_counter() < end:
        call()
        n += 1
    return n


def sample(call: Callable[[], None], budget: Budget) -> list[int]:
    """Durations in ns of successive calls, one perf_counter_ns pair around each call."""
    clock = time.perf_counter_ns
    out: list[int] = []
    deadline = clock() + int(budget.seconds * 1e9)
    while True:
        t0 = clock()
        call()
        t1 = clock()
        out.append(t1 - t0)
        if len(out) >= budget.max_samples or (len(out) >= budget.min_samples and t1 >= deadline):
            return out


def chunk_budget(budget: Budget, chunks: int) -> Budget:
    """One of a case's `chunks` sampling chunks in a process: its share of the sampling time and of
    the fewest samples (at least one)."""
    return Budget(
        seconds=budget.seconds / chunks,
        min_samples=-(-budget.min_samples // chunks),
        max_samples=max(1, budget.max_samples // chunks),
        warmup_s=budget.warmup_s,
    )


def per_step_s(call_ns, steps_per_call):
    """Seconds per training step from a timed call's nanoseconds (works on arrays and columns)."""
    return call_ns / 1e9 / steps_per_call


def call_ns(step_s, steps_per_call):
    """The inverse of per_step_s: a call's nanoseconds from seconds per step."""
    return step_s * steps_per_call * 1e9
