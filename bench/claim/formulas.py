"""The formulas of `bench claim`, each a function of the config (and the named parameters):
FLOPs, bytes, memory, and the seconds of one layer, one collective, one send.

Sources: Megatron-LM's FLOPs (Narayanan et al. 2021, arXiv 2104.04473, appendix); activation
bytes and memory (Korthikanti et al. 2022, arXiv 2205.05198, section 4); ring collectives at
bandwidth W per direction, all-reduce 2 n (N-1) / (N W) (jax-ml/scaling-book).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.claim.config import Config, ConfigError
from bench.claim.hardware import HARDWARE

BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}  # activations and communication per element (fp8: matmul inputs)


@dataclass(frozen=True)
class Params:
    """The model's named parameters. Two are fitted once to the eight A100 runs of Korthikanti et
    al. Table 5 (`bench claim --validate --refit` redoes it), with no per-run tuning; the other
    three are stated assumptions. The same values for every GPU kind."""

    gemm_eff: float = 0.782  # fitted: dense matmuls, achieved share of the tensor-core peak when large
    attn_eff: float = 0.233  # fitted: attention's s^2 matmuls with their masking and scaling (2022 Megatron-LM
    #                          materialises the scores; a fused flash attention would run higher)
    gemm_knee: float = 64.0  # assumed: a matmul whose smallest dimension is n runs at gemm_eff n / (n + knee)
    link_eff: float = 0.80  # assumed: collectives and sends reach this share of the link's one-way bandwidth
    hbm_eff: float = 0.80  # assumed: elementwise work reaches this share of HBM bandwidth


PARAMS = Params()
FITTED = ("gemm_eff", "attn_eff")


def peak_flops(c: Config) -> float:
    g = HARDWARE[c.hardware.gpu]
    return (g.fp8_tflops if c.hardware.dtype == "fp8" else g.bf16_tflops) * 1e12


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


def gemm_rate(c: Config, n: float, pr: Params) -> float:
    """FLOP/s of a dense matmul whose smallest dimension is n on this GPU and dtype."""
    return peak_flops(c) * pr.gemm_eff * n / (n + pr.gemm_knee)


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


def link_time(nbytes: float, gbs: float, pr: Params) -> float:
    return nbytes / (gbs * 1e9 * pr.link_eff)


def allreduce_time(nbytes: float, n: int, gbs: float, pr: Params) -> float:
    """Ring all-reduce of nbytes over n GPUs at gbs GB/s one way: 2 nbytes (n-1)/n / W."""
    return 0.0 if n <= 1 else link_time(2 * nbytes * (n - 1) / n, gbs, pr)


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


def layer_times(c: Config, pr: Params) -> LayerTimes:
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    dense, attn = layer_flops(c)
    tokens = p.microbatch * m.seq / p.cp
    smallest = min(tokens, m.hidden / p.tp)  # the attention projection's inner size is h / tp
    hbm = g.hbm_tbs * 1e12 * pr.hbm_eff
    softmax = 9 * m.heads * (m.seq / p.cp) * m.seq * p.microbatch / p.tp
    act = tokens * m.hidden * BYTES[c.hardware.dtype]
    return LayerTimes(dense=dense / (p.tp * p.cp) / gemm_rate(c, smallest, pr),
                      attn=attn / (p.tp * p.cp) / (peak_flops(c) * pr.attn_eff),
                      elementwise=elementwise_bytes(c) / hbm, softmax=softmax / hbm,
                      tp_comm=2 * allreduce_time(act, p.tp, g.nvlink_gbs, pr))


def layer_params(c: Config) -> float:
    m = c.model
    kv, hd = m.kv_heads or m.heads, m.hidden // m.heads
    return m.hidden * (m.hidden + 2 * kv * hd) + m.hidden * m.hidden \
        + (3 if m.mlp == "swiglu" else 2) * m.hidden * m.ffn + 4 * m.hidden


def total_params(c: Config) -> float:
    """Every layer's weights and the (tied) embedding."""
    return c.model.layers * layer_params(c) + c.model.vocab * c.model.hidden


def params_per_gpu(c: Config) -> float:
    """Parameters one GPU holds: its stage's layers and, on the ends, the embedding, split by tp."""
    m, p = c.model, c.parallel
    return (m.layers / p.pp * layer_params(c) + m.vocab * m.hidden) / p.tp


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


def send_seconds(c: Config, pr: Params) -> float:
    """One microbatch's activation to the next stage: s b h / tp bytes (Megatron's scatter-gather
    over the tp ranks), over NVLink within an NVLink domain, else over the NIC."""
    m, p, g = c.model, c.parallel, HARDWARE[c.hardware.gpu]
    if p.pp == 1:
        return 0.0
    nbytes = p.microbatch * m.seq / p.cp * m.hidden * BYTES[c.hardware.dtype] / p.tp
    across = p.tp * p.cp * p.dp >= g.nvlink_domain  # neighbouring stages in different NVLink domains
    return link_time(nbytes, g.nic_gbs if across else g.nvlink_gbs, pr)


def check_memory(c: Config) -> Config:
    """ConfigError when the estimate of memory per GPU exceeds the GPU's HBM (the estimate printed)."""
    need, have = memory_gb(c), HARDWARE[c.hardware.gpu].hbm_gb
    if need > have:
        raise ConfigError(f"[parallel] memory per GPU: about {need:.0f} GB needed (weights, gradients, optimizer "
                          f"state, activations in flight), the {c.hardware.gpu} has {have:g} GB")
    return c
