"""Messages between the runner and a worker: one JSON object per line, typed on both sides."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class Hello:
    op: str = "hello"


@dataclass(frozen=True)
class Exit:
    op: str = "exit"


@dataclass(frozen=True)
class PeakRequest:
    n: int  # the matmul is (n, n) @ (n, n), float32
    budget: dict  # timing.Budget as a dict
    op: str = "peak"


@dataclass(frozen=True)
class CaseRequest:
    model: str
    impl: str
    device: str
    config: dict  # the model Config's fields
    k: int  # steps per call for fused implementations
    gate: bool  # run the equivalence gate first (the case's first round)
    budget: dict  # timing.Budget as a dict
    op: str = "case"


@dataclass
class HelloReply:
    ok: bool
    info: dict = field(default_factory=dict)  # what the framework actually uses (frameworks.setup)
    error: str = ""
    peak_rss_mb: float = math.nan


@dataclass
class CaseReply:
    status: str  # ok, mismatch, diverged, error, unavailable
    error: str = ""
    first_call_s: float | None = None  # set when the step was built in this call (once per process)
    ops_per_step: float | None = None  # set on the case's first build (with gate)
    info: dict | None = None  # the step's describe(), likewise
    loss_rel_err: float | None = None  # set when the gate ran
    update_rel_err: float | None = None
    samples_ns: list[int] = field(default_factory=list)  # one per timed call
    steps_per_call: int = 1
    pid: int = 0  # the worker process (each round runs in its own)
    peak_rss_mb: float = math.nan


@dataclass
class PeakReply:
    error: str = ""
    result: dict = field(default_factory=dict)  # n, flops, device, median_s, gflops, gflops_best, ...
    peak_rss_mb: float = math.nan


REQUESTS = {cls.op: cls for cls in (Hello, Exit, PeakRequest, CaseRequest)}  # type: ignore[attr-defined]


def encode(msg) -> str:
    """One line of JSON (no newline inside)."""
    return json.dumps(asdict(msg))


def decode_request(line: str):
    d = json.loads(line)
    return REQUESTS[d["op"]](**d)


def decode_reply(cls, line: str):
    """A reply of type cls; unknown keys are an error (the two sides share this module)."""
    d = json.loads(line)
    names = {f.name for f in fields(cls)}
    extra = set(d) - names
    if extra:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(extra))}")
    return cls(**d)
