"""The step-time model of `bench claim`: one training step of a dense decoder transformer on
tp x pp x dp x cp GPUs, term by term. Every term is a formula (bench/claim/formulas.py, with its
citation), a hardware figure (bench/claim/hardware.py, with its source), a named parameter
(formulas.Params), or a cost this project measured (bench/claim/host.py). The pipeline is
simulated with bench/schedules.py, the simulator that computes the pipeline probe's ideal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bench.claim.config import Config
from bench.claim.formulas import (
    PARAMS,
    LayerTimes,
    Params,
    dp_seconds,
    fullest_ranks,
    head_times,
    layer_times,
    model_flops,
    optimizer_seconds,
    peak_flops,
    rank_params,
    send_seconds,
    split,
)
from bench.claim.host import HostCost
from bench.schedules import Plan, hand_order, interleaved_order

KERNELS_PER_LAYER = 15  # forward, one microbatch: 2 norms, 4 matmuls, 2 attention matmuls,
#   softmax, 2 bias-dropout-residuals, bias-GeLU, 2 tensor-parallel collectives, 1 more
#   (Megatron-LM); the backward launches twice as many, plus those it recomputes
HEAD_KERNELS = 6  # output layer, loss and their backward's share per action (assumed)


@dataclass(frozen=True)
class Term:
    name: str
    formula: str
    inputs: str
    seconds: float


@dataclass(frozen=True)
class Chunk:
    """One pipeline chunk (its layers, plus the output layer on the last) for one microbatch:
    GPU seconds forward and backward (recomputation included), the host's seconds to launch them,
    and the work behind them (per-kind seconds, for the breakdown)."""

    layers: int
    forward: float
    backward: float
    host_forward: float
    host_backward: float
    work: dict[str, float]


def recompute_kernels(c: Config) -> int:
    return {"none": 0, "selective": 3, "full": kernels_per_layer(c)}[c.parallel.recompute]


def kernels_per_layer(c: Config) -> int:
    return c.software.kernels_per_layer or KERNELS_PER_LAYER


def chunk_work(c: Config, layers: int, lt: LayerTimes, head: tuple[float, float] | None):
    """Seconds of each kind of work in one chunk for one microbatch, forward and backward."""
    redo = lt.recompute(c.parallel.recompute)
    work = {
        "matmuls": layers * 3 * lt.dense,
        "attention": layers * (1 + lt.attn_backward_ratio) * lt.attn,
        "other work": layers * 3 * lt.elementwise,
        "tensor parallel": layers * (lt.tp_forward + lt.tp_backward),
        "recomputation": layers * redo,
    }
    if head:
        work["matmuls"] += 3 * head[0]
        work["other work"] += 3 * head[1]
    return work


def chunks(c: Config, host: HostCost, pr: Params) -> list[Chunk]:
    """Every chunk (pp x virtual_stages, in pipeline order) of one microbatch."""
    lt = layer_times(c, pr)
    head = head_times(c, pr)
    action_us = host.us_per_action if c.parallel.pp > 1 else 0.0  # the schedule's own cost
    out = []
    for k, n in enumerate(split(c)):
        last = k == c.chunks - 1
        forward = n * lt.forward + (sum(head) if last else 0.0)
        backward = n * (lt.backward + lt.recompute(c.parallel.recompute)) + (
            2 * sum(head) if last else 0.0
        )
        k_f = n * kernels_per_layer(c) + (HEAD_KERNELS if last else 0)
        k_b = n * (2 * kernels_per_layer(c) + recompute_kernels(c)) + (HEAD_KERNELS if last else 0)
        if c.software.cuda_graphs:
            k_f = k_b = 1
        out.append(
            Chunk(
                n,
                forward,
                backward,
                (k_f * host.us_per_kernel + action_us) * 1e-6,
                (k_b * host.us_per_kernel + action_us) * 1e-6,
                chunk_work(c, n, lt, head if last else None),
            )
        )
    return out


@cache
def plan(schedule: str, pp: int, microbatches: int, virtual: int) -> Plan:
    """The schedule's actions (bench/schedules.py), built once per shape."""
    if schedule == "interleaved-1f1b":
        orders = {r: interleaved_order(r, pp, microbatches, virtual) for r in range(pp)}
    else:
        orders = {
            r: [(r, kind, m) for kind, m in hand_order(schedule, r, pp, microbatches)]
            for r in range(pp)
        }
    return Plan.of(orders, pp * virtual, {s: s % pp for s in range(pp * virtual)})


def pipeline_seconds(c: Config, cs: list[Chunk], send: float, with_host: bool) -> float:
    """The schedule's makespan simulated with these chunk times; with the host, an action takes
    the longer of its GPU time and its launch time (kernels are queued ahead asynchronously)."""
    p = c.parallel
    pick = max if with_host else (lambda gpu, _host: gpu)
    f = {k: pick(ch.forward, ch.host_forward) for k, ch in enumerate(cs)}
    b = {k: pick(ch.backward, ch.host_backward) for k, ch in enumerate(cs)}
    return plan(c.schedule, p.pp, c.microbatches, p.virtual_stages).makespan(f, b, send)


def busiest_rank(c: Config, cs: list[Chunk]) -> int:
    pp = c.parallel.pp
    return max(
        range(pp), key=lambda r: sum(cs[k].forward + cs[k].backward for k in range(r, c.chunks, pp))
    )


def lower_bound(c: Config, host: HostCost, pr: Params = PARAMS) -> float:
    """A step no schedule beats, plus the step's other terms (the layout search simulates only the
    layouts whose bound is under its best so far). A rank r works M x its chunks' time, cannot
    start before microbatch 0 has passed the r stages ahead of its first chunk, and its last
    backward must still pass back through them: M W_r + sum_(k<r) (f_k + b_k) + 2 r send, the
    most over the ranks (the 1F1B makespan itself when stages are equal)."""
    cs = chunks(c, host, pr)
    f = [max(ch.forward, ch.host_forward) for ch in cs]
    b = [max(ch.backward, ch.host_backward) for ch in cs]
    send, pp = send_seconds(c, pr), c.parallel.pp
    ahead, bound = 0.0, 0.0
    for r in range(pp):
        work = sum(f[k] + b[k] for k in range(r, c.chunks, pp))
        bound = max(bound, c.microbatches * work + ahead + 2 * r * send)
        ahead += f[r] + b[r]
    return bound + _after_pipeline(c, pr)[0]


def _after_pipeline(c: Config, pr: Params) -> tuple[float, float, float]:
    """(data parallel + optimizer, data parallel, optimizer) seconds, of the rank with most
    parameters (the step waits for every rank)."""
    params = max(rank_params(c, r) for r in fullest_ranks(c))
    dp = pr.dp_exposed * dp_seconds(c, params, pr)
    opt = optimizer_seconds(c, params, pr)
    return dp + opt, dp, opt


@dataclass(frozen=True)
class Step:
    config: Config
    terms: tuple[Term, ...]
    host: HostCost

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.terms)

    @property
    def mfu(self) -> float:
        return model_flops(self.config) / (
            self.seconds * self.config.gpus * peak_flops(self.config)
        )

    def term(self, name: str) -> float:
        return next(t.seconds for t in self.terms if t.name == name)


def step(c: Config, host: HostCost, pr: Params = PARAMS) -> Step:
    """The step, term by term, with the host's cost to launch kernels and run the schedule."""
    p, M = c.parallel, c.microbatches
    cs = chunks(c, host, pr)
    r = busiest_rank(c, cs)
    mine = [cs[k] for k in range(r, c.chunks, p.pp)]
    work = {kind: M * sum(ch.work[kind] for ch in mine) for kind in mine[0].work}
    send = send_seconds(c, pr)
    ideal = pipeline_seconds(c, cs, send, with_host=False)
    hosted = pipeline_seconds(c, cs, send, with_host=True)
    _, dp, opt = _after_pipeline(c, pr)
    terms = _work_terms(c, work, sum(ch.layers for ch in mine)) + (
        Term(
            "pipeline bubble and sends",
            "simulate(schedule, chunk times, send) - the busiest rank's work",
            f"{c.schedule}, pp = {p.pp}, v = {p.virtual_stages}, M = {M}, send {send * 1e3:.3g} ms",
            ideal - sum(work.values()),
        ),
        Term(
            "data parallel",
            "dp_exposed x (reduce-scatter grads + all-gather weights) over dp x cp",
            f"dp = {p.dp}, cp = {p.cp}, exposed {pr.dp_exposed:g}",
            dp,
        ),
        Term("optimizer", "params / (dp cp) x 30 bytes / (HBM hbm_eff)", "Adam", opt),
        Term(
            "framework host overhead",
            "simulate(max(GPU, launch) per action) - simulate(GPU)",
            f"{host.us_per_kernel:.3g} µs per kernel, {kernels_per_layer(c)} kernels per layer "
            f"forward, {host.us_per_action:.3g} µs of schedule per action, CUDA graphs "
            f"{'on' if c.software.cuda_graphs else 'off'}",
            hosted - ideal,
        ),
    )
    return Step(c, terms, host)


def _work_terms(c: Config, work: dict[str, float], layers: int) -> tuple[Term, ...]:
    """The busiest rank's work, by kind, over every microbatch."""
    p = c.parallel
    where = f"{c.microbatches} microbatches x {layers} layers"
    rows = [
        ("matmuls", "M x layers x 3 F_dense / rate(n) (+ output layer 3 F_logits / rate)", where),
        (
            "attention",
            "M x layers x (1 + backward ratio) F_attn / (MAMF x attn_eff)",
            c.software.attention,
        ),
        (
            "other work",
            "M x layers x 3 elementwise bytes / (HBM x hbm_eff) (+ loss)",
            c.hardware.dtype,
        ),
        (
            "tensor parallel",
            "M x layers x collectives (forward + backward) over tp on NVLink",
            f"tp = {p.tp}, overlap {'on' if c.software.tp_comm_overlap else 'off'}",
        ),
        ("recomputation", "M x layers x what the backward runs again", p.recompute),
    ]
    return tuple(Term(name, formula, inputs, work[name]) for name, formula, inputs in rows)
