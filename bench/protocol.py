"""Messages between the harness and its children, one JSON object per line, typed on both sides:
the sweep's runner and its workers (requests in on stdin, replies out on stdout), and the
pipeline probe and its ranks (the spec on the command line, results out on stdout)."""

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
    steps_per_call: int  # for fused implementations (the others run 1)
    gate: bool  # run the equivalence gate first (the case's first round)
    # timing.Budget as a dict: the case's whole round (a chunk samples its share:
    # timing.chunk_budget)
    budget: dict
    chunks: int = 1  # the round's sampling in this many turns (--chunks)
    chunk: int = 0  # which turn this is; 0 (or a fresh build): full warm-up
    op: str = "case"


@dataclass(frozen=True)
class DescribeRequest:
    """Count the ops of a case the worker built and describe it: sent after the round's timing of
    every case in that worker (describing a torch step resets Dynamo: bench/sweep/prepare.describe_step)."""

    model: str
    impl: str
    config: dict  # the model Config's fields
    op: str = "describe"


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
    loss_rel_err: float | None = None  # set when the gate ran
    update_rel_err: float | None = None
    samples_ns: list[int] = field(default_factory=list)  # one per timed call
    steps_per_call: int = 1
    pid: int = 0  # the worker process (each round runs in its own)
    peak_rss_mb: float = math.nan
    last: bool = (
        True  # the round's sampling is complete (its last chunk): the runner asks no more of it
    )


@dataclass
class DescribeReply:
    # ok; absent (this worker did not build the case: asked again after a later round); error
    status: str
    error: str = ""
    ops_per_step: float | None = None  # counted by the implementation (info["op_unit"])
    info: dict = field(default_factory=dict)  # the step's describe(), with its op_unit
    peak_rss_mb: float = math.nan


@dataclass
class PeakReply:
    error: str = ""
    # n, flops, device, median_s, gflops, gflops_best, ...
    result: dict = field(default_factory=dict)
    peak_rss_mb: float = math.nan


@dataclass(frozen=True)
class PipeCase:
    schedule: str
    microbatches: int
    round: int
    gate: bool  # compare the gradients of one step with the float64 reference first
    steps: int  # timed steps


@dataclass(frozen=True)
class RankSpec:
    """One process of a pipeline group (a rank; C's and JAX's shard_map form: every rank of its
    node). Across nodes node 0 writes every node's (bench/pipeline/nodes.py)."""

    rank: int  # its first rank: a node's ranks are node x world / nnodes onwards
    world: int
    model: str
    config: dict  # the model Config's fields
    device: str
    timeout_s: float  # the process group's own timeout
    # the group's rendezvous: file:///.../rdzv or tcp://HOST:PORT (torch), HOST:PORT (jax-dist's
    # coordinator; C's across nodes), '' (C on one node)
    init_method: str
    cases: tuple[PipeCase, ...]
    threads: int = 1  # compute threads of this process (P for a one-process baseline)
    form: str = "torch"  # torch, jax, jax-dist, jax-single, c, c-single (frameworks.PipelineForm)
    nnodes: int = 1  # machines the group spans
    bind: str = "127.0.0.1"  # this node's address: the ranks' sockets use its interface only

    @property
    def node(self) -> int:
        return self.rank // (self.world // self.nnodes)

    @classmethod
    def decode(cls, text: str) -> RankSpec:
        d = json.loads(text)
        return cls(**{**d, "cases": tuple(PipeCase(**c) for c in d["cases"])})


@dataclass
class PipeResult:
    """One (case, round) from rank 0 (or from the rank that failed it)."""

    schedule: str
    microbatches: int
    round: int
    status: str  # ok, error, timeout, crashed, interrupted
    error: str = ""
    grad_rel_err: float | None = None  # set when the gate ran
    step_ns: list[int] = field(default_factory=list)  # one per timed step
    stage_f_s: dict = field(default_factory=dict)  # stage -> forward seconds of one microbatch
    stage_b_s: dict = field(default_factory=dict)  # stage -> backward seconds
    comm_s: float = 0.0  # one-way send of one activation
    order: dict | None = None  # torch's own action order per rank (multi-stage schedules)
    op: str = "result"


@dataclass
class RankDone:
    seconds: float
    op: str = "done"


# type: ignore[attr-defined]
REQUESTS = {cls.op: cls for cls in (Hello, Exit, PeakRequest, CaseRequest, DescribeRequest)}


def encode(msg) -> str:
    """One line of JSON (no newline inside)."""
    return json.dumps(asdict(msg))


def decode_request(line: str):
    d = json.loads(line)
    return REQUESTS[d["op"]](**d)


def decode_rank_line(line: str) -> PipeResult | RankDone:
    d = json.loads(line)
    return decode_reply({"result": PipeResult, "done": RankDone}[d.get("op")], line)


def decode_reply(cls, line: str):
    """A reply of type cls; unknown keys are an error (the two sides share this module)."""
    d = json.loads(line)
    names = {f.name for f in fields(cls)}
    extra = set(d) - names
    if extra:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(extra))}")
    return cls(**d)
