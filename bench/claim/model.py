"""The step-time model of `bench claim`: one training step of a dense decoder transformer on
tp x pp x dp x cp GPUs, term by term. Every term is a formula (bench/claim/formulas.py, with its
citation), a hardware figure (bench/claim/hardware.py, with its source), a named parameter
(formulas.Params), or a cost this project measured (bench/claim/host.py). The pipeline's bubble is
simulated with bench/schedules.py, the same simulator that computes the pipeline probe's ideal.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.claim.config import Config
from bench.claim.formulas import (
    PARAMS,
    Params,
    allreduce_time,
    elementwise_bytes,
    gemm_rate,
    layer_times,
    logits_flops,
    model_flops,
    params_per_gpu,
    peak_flops,
    send_seconds,
)
from bench.claim.hardware import HARDWARE
from bench.claim.host import HostCost
from bench.schedules import hand_order, interleaved_order, simulate


@dataclass(frozen=True)
class Term:
    name: str
    formula: str
    inputs: str
    seconds: float


KERNELS_PER_LAYER = 15  # forward, one microbatch: 2 norms, 4 matmuls, 2 attention matmuls, softmax,
#                         2 bias-dropout-residuals, bias-GeLU, 2 tensor-parallel collectives, 1 more (Megatron-LM)


@dataclass(frozen=True)
class Stage:
    """Seconds of one pipeline chunk (its layers, plus the embedding or the head) for one
    microbatch: forward and backward (recomputation included), and the host's CPU time to launch
    them."""

    forward: float
    backward: float
    host_forward: float
    host_backward: float


def stage_times(c: Config, host: HostCost, pr: Params) -> list[Stage]:
    """Every stage (pp x virtual_stages chunks in pipeline order) of one microbatch."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    lt = layer_times(c, pr)
    n_stages = p.pp * p.virtual_stages
    per = m.layers // n_stages
    redo = {"none": 0.0, "selective": lt.attn + lt.softmax, "full": lt.forward}[p.recompute]
    head = logits_flops(c) / p.tp / gemm_rate(c, min(p.microbatch * m.seq, m.hidden), pr)
    loss = 3 * 4 * p.microbatch * m.seq * m.vocab / p.tp / (g.hbm_tbs * 1e12 * pr.hbm_eff)  # fp32 logits
    kernels = c.software.kernels_per_layer or KERNELS_PER_LAYER
    out = []
    for s in range(n_stages):
        last = s == n_stages - 1
        f = per * lt.forward + (head + loss / 3 if last else 0.0)
        b = per * (lt.backward + redo) + (2 * head + 2 * loss / 3 if last else 0.0)
        k_f, k_b = per * kernels, per * kernels * (2 + (redo > 0))
        if c.software.cuda_graphs:
            k_f = k_b = 1
        action = host.us_per_action if p.pp > 1 else 0.0  # the schedule's own cost, where there is one
        out.append(Stage(f, b, (k_f * host.us_per_kernel + action) * 1e-6, (k_b * host.us_per_kernel + action) * 1e-6))
    return out


def pipeline_orders(c: Config) -> tuple[dict, dict]:
    """({rank: [(stage, F|B, microbatch)]}, {stage: rank}) of the config's schedule."""
    P, v, M = c.parallel.pp, c.parallel.virtual_stages, c.microbatches
    if c.schedule == "interleaved-1f1b":
        orders = {r: interleaved_order(r, P, M, v) for r in range(P)}
    else:
        orders = {r: [(r, k, mb) for k, mb in hand_order(c.schedule, r, P, M)] for r in range(P)}
    return orders, {s: s % P for s in range(P * v)}


def pipeline_time(c: Config, stages: list[Stage], send_s: float, with_host: bool) -> float:
    """The schedule's makespan simulated with these stage times (bench/schedules.simulate); with
    the host, an action takes the longer of its GPU time and its launch time."""
    orders, rank_of = pipeline_orders(c)
    f = {s: max(st.forward, st.host_forward) if with_host else st.forward for s, st in enumerate(stages)}
    b = {s: max(st.backward, st.host_backward) if with_host else st.backward for s, st in enumerate(stages)}
    return simulate(orders, len(stages), f, b, send_s, rank_of)


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
        return model_flops(self.config) / (self.seconds * self.config.gpus * peak_flops(self.config))

    def term(self, name: str) -> float:
        return next(t.seconds for t in self.terms if t.name == name)


def step(c: Config, host: HostCost, pr: Params = PARAMS) -> Step:
    """The step, term by term, with the host's cost to launch kernels and run the schedule."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    lt, M = layer_times(c, pr), c.microbatches
    stages = stage_times(c, host, pr)
    per, v = m.layers // (p.pp * p.virtual_stages), p.virtual_stages
    busiest = max(range(p.pp), key=lambda r: sum(stages[r + k * p.pp].forward + stages[r + k * p.pp].backward
                                                  for k in range(v)))
    mine = [stages[busiest + k * p.pp] for k in range(v)]
    layers = per * v  # on the busiest rank
    last = busiest == p.pp - 1
    head = sum(st.forward + st.backward for st in mine) - layers * (lt.forward + lt.backward) \
        - layers * {"none": 0, "selective": lt.attn + lt.softmax, "full": lt.forward}[p.recompute]
    matmul = M * (layers * 3 * (lt.dense + lt.attn) + (head if last else 0.0))
    other = M * layers * 3 * lt.elementwise
    tp = M * layers * 2 * lt.tp_comm
    redo = M * layers * {"none": 0.0, "selective": lt.attn + lt.softmax, "full": lt.forward}[p.recompute]
    send = send_seconds(c, pr)
    ideal = pipeline_time(c, stages, send, with_host=False)
    hosted = pipeline_time(c, stages, send, with_host=True)
    bubble = ideal - (matmul + other + tp + redo)
    grads = params_per_gpu(c) * 4  # fp32 gradients reduced over dp
    dp_net = g.nvlink_gbs if p.tp * p.cp * p.dp <= g.nvlink_domain else g.nic_gbs
    dp_all = allreduce_time(grads, p.dp, dp_net, pr)
    opt_params = params_per_gpu(c) / (p.dp if c.software.distributed_optimizer else 1)
    optimizer = opt_params * 30 / (g.hbm_tbs * 1e12 * pr.hbm_eff)  # Adam: fp32 master, moments, grads
    mb = f"{M} microbatches x {layers} layers"
    terms = (
        Term("matmuls", "M L_rank 3 (F_dense / rate(n) + F_attn / (peak attn_eff)) + head",
             f"{mb}; rate at n = {min(p.microbatch * m.seq / p.cp, m.hidden / p.tp):g}", matmul),
        Term("other work", "M L_rank 3 bytes_elementwise / (HBM hbm_eff)", f"{elementwise_bytes(c) / 1e6:.0f} MB per "
             "layer forward", other),
        Term("tensor parallel", "M L_rank 2 x 2 all-reduce(s b h) over tp on NVLink", f"tp = {p.tp}, "
             f"{g.nvlink_gbs:g} GB/s x link_eff", tp),
        Term("recomputation", {"none": "0", "selective": "M L_rank (attention matmuls + softmax)",
                               "full": "M L_rank forward"}[p.recompute], p.recompute, redo),
        Term("pipeline bubble and sends", "simulate(schedule, stage times, send) - the busiest rank's compute",
             f"{c.schedule}, pp = {p.pp}, v = {v}, M = {M}, send {send * 1e3:.3g} ms", bubble),
        Term("data parallel", "(1 - dp_overlap) all-reduce(4 bytes x params) over dp",
             f"dp = {p.dp}, overlap {c.software.dp_overlap:g}", (1 - c.software.dp_overlap) * dp_all),
        Term("optimizer", "params / (dp) x 30 bytes / (HBM hbm_eff)", f"{opt_params / 1e9:.3g} G parameters", optimizer),
        Term("framework host overhead", "simulate(with max(GPU, launch) per action) - simulate(GPU only)",
             f"{host.us_per_kernel:.3g} µs per kernel, {c.software.kernels_per_layer or KERNELS_PER_LAYER} kernels "
             f"per layer forward, {host.us_per_action:.3g} µs of schedule per action, CUDA graphs "
             f"{'on' if c.software.cuda_graphs else 'off'}", hosted - ideal),
    )
    return Step(c, terms, host)
