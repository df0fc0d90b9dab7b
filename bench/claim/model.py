"""The step-time model of `bench claim`: one training step of a dense decoder transformer on
tp x pp x dp x cp GPUs, term by term. Every term is a formula over the config, a hardware figure
(bench/claim/hardware.py, with its source), a named parameter fitted once to the published A100
runs (PARAMS), or a cost this project measured (bench/claim/host.py).

Formulas: Megatron-LM's FLOPs (Narayanan et al. 2021, arXiv 2104.04473, appendix) and activation
bytes (Korthikanti et al. 2022, arXiv 2205.05198, section 4); ring collectives at bandwidth W per
direction: all-reduce 2 n (N-1) / (N W) (jax-ml/scaling-book); the pipeline's bubble simulated
with bench/schedules.py, the same simulator that computes the pipeline probe's ideal.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.claim.config import Config
from bench.claim.hardware import HARDWARE
from bench.schedules import hand_order, interleaved_order, simulate

BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}  # activations and communication per element (fp8: matmul inputs)


@dataclass(frozen=True)
class Params:
    """The model's named parameters. Fitted once to the eight A100 runs of Korthikanti et al.
    Table 5 (bench claim --validate), with no per-run tuning; the same values for every GPU."""

    gemm_eff: float = 0.72  # dense matmuls: achieved share of the tensor-core peak at large sizes
    gemm_knee: float = 1024.0  # a matmul with smallest dimension n runs at gemm_eff * n / (n + knee)
    attn_eff: float = 0.40  # attention's batched matmuls (per head, head_dim inner size)
    link_eff: float = 0.70  # collectives and sends: achieved share of the link's one-way bandwidth
    hbm_eff: float = 0.80  # elementwise work: achieved share of HBM bandwidth


PARAMS = Params()


@dataclass(frozen=True)
class Term:
    name: str
    formula: str
    inputs: str
    seconds: float


def layer_flops(c: Config) -> tuple[float, float]:
    """Forward FLOPs of one layer for one microbatch, whole (before tp and cp split it):
    (dense matmuls, attention's s^2 matmuls)."""
    m, b, s = c.model, c.parallel.microbatch, c.model.seq
    kv = m.kv_heads or m.heads
    hd = m.hidden // m.heads
    qkv = 2 * b * s * m.hidden * (m.hidden + 2 * kv * hd)
    proj = 2 * b * s * m.hidden * m.hidden
    mlp = (3 if m.mlp == "swiglu" else 2) * 2 * b * s * m.hidden * m.ffn
    attn = 4 * b * s * s * m.hidden  # Q K^T and P V, every head
    return qkv + proj + mlp, attn


def logits_flops(c: Config) -> float:
    return 2 * c.parallel.microbatch * c.model.seq * c.model.hidden * c.model.vocab


def model_flops(c: Config) -> float:
    """Model FLOPs of one step (forward + backward = 3 x forward, no recomputation counted: the
    MFU convention), all microbatches of the global batch."""
    dense, attn = layer_flops(c)
    per_mb = c.model.layers * (dense + attn) + logits_flops(c)
    return 3 * per_mb * c.parallel.global_batch / c.parallel.microbatch


def gemm_rate(c: Config, n: float) -> float:
    """FLOP/s of a dense matmul whose smallest dimension is n on this GPU and dtype."""
    g = HARDWARE[c.hardware.gpu]
    peak = (g.fp8_tflops if c.hardware.dtype == "fp8" else g.bf16_tflops) * 1e12
    return peak * PARAMS.gemm_eff * n / (n + PARAMS.gemm_knee)


def elementwise_bytes(c: Config) -> float:
    """HBM bytes of one layer's forward elementwise work for one microbatch, per GPU: the
    activations Korthikanti et al. count (LayerNorms, dropouts, residuals 22 s b h bytes at 2 bytes
    per element, split by tp only with sequence parallelism; GeLU 4 s b f / tp; softmax and its
    dropout 9 a s^2 b / tp), each written and read once."""
    m, p = c.model, c.parallel
    s, b = m.seq / p.cp, p.microbatch
    e = BYTES[c.hardware.dtype] / 2
    sbh = s * b * m.hidden
    norms = 22 * sbh / (p.tp if p.sequence_parallel else 1)
    gelu = 4 * s * b * m.ffn * (1.5 if m.mlp == "swiglu" else 1) / p.tp
    softmax = 9 * m.heads * s * m.seq * b / p.tp
    return e * (norms + gelu) + softmax


def link_time(nbytes: float, gbs: float) -> float:
    return nbytes / (gbs * 1e9 * PARAMS.link_eff)


def allreduce_time(nbytes: float, n: int, gbs: float) -> float:
    """Ring all-reduce of nbytes over n GPUs at gbs GB/s one way: 2 nbytes (n-1)/n / W."""
    return 0.0 if n <= 1 else link_time(2 * nbytes * (n - 1) / n, gbs)


@dataclass(frozen=True)
class LayerTimes:
    """Seconds of one layer for one microbatch on one GPU."""

    dense: float  # dense matmuls, forward
    attn: float  # attention's s^2 matmuls, forward
    elementwise: float  # forward elementwise bytes at HBM bandwidth
    softmax: float  # the softmax and its dropout (part of elementwise; selective recomputation redoes it)
    tp_comm: float  # forward tensor-parallel collectives (the backward has as many)

    @property
    def forward(self) -> float:
        return self.dense + self.attn + self.elementwise + self.tp_comm

    @property
    def backward(self) -> float:
        """Twice the matmuls and the elementwise work, the same collectives."""
        return 2 * (self.dense + self.attn + self.elementwise) + self.tp_comm


def layer_times(c: Config) -> LayerTimes:
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    dense, attn = layer_flops(c)
    tokens = p.microbatch * m.seq / p.cp
    smallest = min(tokens, m.hidden / p.tp)  # the attention projection's inner size is h / tp
    peak = (g.fp8_tflops if c.hardware.dtype == "fp8" else g.bf16_tflops) * 1e12
    hbm = g.hbm_tbs * 1e12 * PARAMS.hbm_eff
    softmax = 9 * m.heads * (m.seq / p.cp) * m.seq * p.microbatch / p.tp
    act = tokens * m.hidden * BYTES[c.hardware.dtype]
    return LayerTimes(dense=dense / (p.tp * p.cp) / gemm_rate(c, smallest),
                      attn=attn / (p.tp * p.cp) / (peak * PARAMS.attn_eff),
                      elementwise=elementwise_bytes(c) / hbm, softmax=softmax / hbm,
                      tp_comm=2 * allreduce_time(act, p.tp, g.nvlink_gbs))


def params_per_gpu(c: Config) -> float:
    """Parameters one GPU holds: its stage's layers and, on the ends, the embedding, split by tp."""
    m, p = c.model, c.parallel
    kv, hd = m.kv_heads or m.heads, m.hidden // m.heads
    layer = m.hidden * (m.hidden + 2 * kv * hd) + m.hidden * m.hidden \
        + (3 if m.mlp == "swiglu" else 2) * m.hidden * m.ffn + 4 * m.hidden
    return (m.layers / p.pp * layer + m.vocab * m.hidden) / p.tp


def memory_gb(c: Config) -> float:
    """Memory per GPU on the first stage, GB: weights (2 bytes), fp32 gradients (4), fp32 master
    and Adam moments (12, over dp with a distributed optimizer), and the activations of the
    microbatches in flight (Korthikanti et al. section 4: s b h (34 + 5 a s / h) bytes per layer,
    / tp with sequence parallelism, 34 s b h / tp with selective and 2 s b h with full
    recomputation; 1F1B keeps pp microbatches in flight, GPipe all of them)."""
    m, p = c.model, c.parallel
    state = params_per_gpu(c) * (2 + 4 + 12 / (p.dp if c.software.distributed_optimizer else 1))
    s, b, t = m.seq / p.cp, p.microbatch, p.tp
    sbh = s * b * m.hidden
    if p.recompute == "full":
        per_layer = 2 * sbh
    elif p.recompute == "selective":
        per_layer = 34 * sbh / (t if p.sequence_parallel else 1)
    elif p.sequence_parallel:
        per_layer = sbh / t * (34 + 5 * m.heads * m.seq / m.hidden)
    else:
        per_layer = sbh * (10 + 24 / t + 5 * m.heads * m.seq / (m.hidden * t))
    in_flight = c.microbatches if c.schedule == "gpipe" else min(c.microbatches, p.pp)
    acts = per_layer * m.layers / p.pp * in_flight * (1 + (p.pp - 1) / (p.pp * p.virtual_stages)
                                                        if p.virtual_stages > 1 else 1)
    return (state + acts) / 1e9


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


def stage_times(c: Config, host_us: float) -> list[Stage]:
    """Every stage (pp x virtual_stages chunks in pipeline order) of one microbatch."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    lt = layer_times(c)
    n_stages = p.pp * p.virtual_stages
    per = m.layers // n_stages
    redo = {"none": 0.0, "selective": lt.attn + lt.softmax, "full": lt.forward}[p.recompute]
    head = logits_flops(c) / p.tp / gemm_rate(c, min(p.microbatch * m.seq, m.hidden))
    loss = 3 * 4 * p.microbatch * m.seq * m.vocab / p.tp / (g.hbm_tbs * 1e12 * PARAMS.hbm_eff)  # fp32 logits
    kernels = c.software.kernels_per_layer or KERNELS_PER_LAYER
    out = []
    for s in range(n_stages):
        last = s == n_stages - 1
        f = per * lt.forward + (head + loss / 3 if last else 0.0)
        b = per * (lt.backward + redo) + (2 * head + 2 * loss / 3 if last else 0.0)
        k_f, k_b = per * kernels, per * kernels * (2 + (redo > 0))
        if c.software.cuda_graphs:
            k_f = k_b = 1
        out.append(Stage(f, b, k_f * host_us * 1e-6, k_b * host_us * 1e-6))
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
    host_us_per_kernel: float

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.terms)

    @property
    def mfu(self) -> float:
        g = HARDWARE[self.config.hardware.gpu]
        peak = (g.fp8_tflops if self.config.hardware.dtype == "fp8" else g.bf16_tflops) * 1e12
        return model_flops(self.config) / (self.seconds * self.config.gpus * peak)

    def term(self, name: str) -> float:
        return next(t.seconds for t in self.terms if t.name == name)


def send_seconds(c: Config) -> float:
    """One microbatch's activation to the next stage: s b h / tp bytes (Megatron's scatter-gather
    over the tp ranks), over NVLink within an NVLink domain, else over the NIC."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    if p.pp == 1:
        return 0.0
    nbytes = p.microbatch * m.seq / p.cp * m.hidden * BYTES[c.hardware.dtype] / p.tp
    across = p.tp * p.cp * p.dp >= g.nvlink_domain  # neighbouring stages in different NVLink domains
    return link_time(nbytes, g.nic_gbs if across else g.nvlink_gbs)


def step(c: Config, host_us: float) -> Step:
    """The step, term by term; host_us: the host's CPU time to launch one kernel."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    lt, M = layer_times(c), c.microbatches
    stages = stage_times(c, host_us)
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
    send = send_seconds(c)
    ideal = pipeline_time(c, stages, send, with_host=False)
    hosted = pipeline_time(c, stages, send, with_host=True)
    bubble = ideal - (matmul + other + tp + redo)
    grads = params_per_gpu(c) * 4  # fp32 gradients reduced over dp
    dp_net = g.nvlink_gbs if p.tp * p.cp * p.dp <= g.nvlink_domain else g.nic_gbs
    dp_all = allreduce_time(grads, p.dp, dp_net)
    opt_params = params_per_gpu(c) / (p.dp if c.software.distributed_optimizer else 1)
    optimizer = opt_params * 30 / (g.hbm_tbs * 1e12 * PARAMS.hbm_eff)  # Adam: fp32 master, moments, grads
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
             f"{host_us:.3g} µs per kernel, {c.software.kernels_per_layer or KERNELS_PER_LAYER} kernels per layer "
             f"forward, CUDA graphs {'on' if c.software.cuda_graphs else 'off'}", hosted - ideal),
    )
    return Step(c, terms, host_us)
