"""The formulas of `bench claim`, each a function of the config (and the named parameters):
FLOPs, bytes, the pipeline split, and the seconds of one layer, one collective, one send.

Sources: Megatron-LM's FLOPs (Narayanan et al. 2021, arXiv 2104.04473, appendix); activation
bytes (Korthikanti et al. 2022, arXiv 2205.05198, section 4); causal fused attention computes half
the s x s products and its backward five matmuls to the forward's two (Dao 2023, FlashAttention-2,
arXiv 2307.08691, section 3); ring collectives at bandwidth W per direction: all-gather and
reduce-scatter n (N-1) / (N W), all-reduce twice that (jax-ml/scaling-book).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.claim.config import Config

ACT_BYTES = 2  # activations, gradients and pipeline sends stay 16-bit, FP8 runs included


@dataclass(frozen=True)
class Params:
    """The model's named parameters: four fitted once to both published tables together
    (`bench claim --validate --refit`), the same for every GPU kind and run; the rest stated
    assumptions. Rates are shares of each GPU's measured MAMF (bench/claim/hardware.py)."""

    gemm_eff: float = 0.891  # fitted: 16-bit matmuls, share of the BF16 MAMF when large
    gemm_eff_fp8: float = 0.811  # fitted: FP8 matmuls with their scaling, share of the FP8 MAMF
    attn_eff_materialised: float = 0.298  # fitted: 2022's attention (s x s scores written out),
    #                                       its s^2 matmuls' share of the BF16 MAMF
    dp_exposed: float = 0.687  # fitted: share of the data-parallel collectives the step waits for
    attn_eff: float = 0.5  # assumed: fused attention's share of the BF16 MAMF (FlashAttention-3,
    #                        arXiv 2407.08608: 75% of H100 peak forward, less backward and causal)
    gemm_knee: float = (
        64.0  # assumed: a matmul whose smallest side is n runs n / (n + knee) as fast
    )
    link_eff: float = 0.80  # assumed: collectives reach this share of a link's one-way bandwidth
    hbm_eff: float = 0.80  # assumed: elementwise work reaches this share of HBM bandwidth
    tp_overlap_exposed: float = 0.25  # assumed, with tp_comm_overlap only: NeMo's userbuffers
    #                                   split each matmul in 4 and hide all but the first chunk


PARAMS = Params()
FITTED = ("gemm_eff", "gemm_eff_fp8", "attn_eff_materialised", "dp_exposed")


def peak_flops(c: Config) -> float:
    """The datasheet's dense peak of the step's dtype (the MFU's denominator)."""
    g = c.gpu
    return (g.fp8_tflops if c.hardware.dtype == "fp8" else g.bf16_tflops) * 1e12


def matmul_rate(c: Config, n: float, pr: Params, fp8: bool) -> float:
    """FLOP/s of a matmul whose smallest side is n: the fitted share of the GPU's MAMF."""
    g = c.gpu
    top = g.mamf_fp8 * pr.gemm_eff_fp8 if fp8 else g.mamf_bf16 * pr.gemm_eff
    return top * 1e12 * n / (n + pr.gemm_knee)


def head_dim(c: Config) -> int:
    return c.model.hidden // c.model.heads


def kv_width(c: Config) -> int:
    """Width of K (and of V): kv heads x head dim."""
    return (c.model.kv_heads or c.model.heads) * head_dim(c)


def mlp_matrices(c: Config) -> int:
    return 3 if c.model.mlp == "swiglu" else 2


def layer_flops(c: Config) -> tuple[float, float]:
    """Forward FLOPs of one layer for one microbatch, whole (before tp and cp split it):
    (dense matmuls, attention's s x s matmuls as executed: fused attention skips the masked half,
    materialised attention computes every score)."""
    m, b, s = c.model, c.parallel.microbatch, c.model.seq
    qkv = 2 * b * s * m.hidden * (m.hidden + 2 * kv_width(c))
    proj = 2 * b * s * m.hidden * m.hidden
    mlp = mlp_matrices(c) * 2 * b * s * m.hidden * m.ffn
    attn = 4 * b * s * s * m.hidden  # Q K^T and P V over every head
    return qkv + proj + mlp, attn / 2 if c.software.attention == "fused" else attn


def logits_flops(c: Config) -> float:
    return 2 * c.parallel.microbatch * c.model.seq * c.model.hidden * c.model.vocab


def model_flops(c: Config) -> float:
    """Model FLOPs of one step over every data-parallel replica: forward + backward = 3 x forward
    of the global batch, no recomputation, attention counted non-causally (Megatron-LM's 72 B s l
    h^2 (1 + s/6h + V/12lh) for h = ffn/4, as NeMo's MFU figures count it)."""
    dense, _ = layer_flops(c)
    b, s, h = c.parallel.microbatch, c.model.seq, c.model.hidden
    per_mb = c.model.layers * (dense + 4 * b * s * s * h) + logits_flops(c)
    return 3 * per_mb * c.parallel.global_batch / b


def tokens(c: Config) -> float:
    """Tokens of one microbatch on one GPU: microbatch x seq / cp."""
    return c.parallel.microbatch * c.model.seq / c.parallel.cp


def elementwise_bytes(c: Config) -> float:
    """HBM bytes of one layer's forward elementwise work for one microbatch, per GPU, each tensor
    written and read once: LayerNorms, dropouts and residuals 22 t h (Korthikanti et al.; split by
    tp only with sequence parallelism), the MLP's activation (reads 2 f, or 4 f gated, writes 2 f
    per token, over tp), the FP8 cast of the attention output (reads 2, writes the FP8 copy and its
    transpose; block scaling adds one scale per 32: TransformerEngine fuses the other matmul
    inputs' casts into the norms and the activation, which then write FP8), and with materialised
    attention the softmax and its dropout, 9 a s t bytes over tp."""
    m, p = c.model, c.parallel
    t, h, f = tokens(c), m.hidden, m.ffn
    norms = 22 * t * h / (p.tp if p.sequence_parallel else 1)
    act = (2 * mlp_matrices(c) + 2) * t * f / p.tp
    cast = 0.0
    if c.hardware.dtype == "fp8":
        per_element = 4 + (2 / 32 if c.software.fp8_recipe == "block" else 0)
        cast = per_element * t * h / p.tp
    return norms + act + cast + softmax_bytes(c)


def softmax_bytes(c: Config) -> float:
    """The materialised softmax and its dropout: 9 a s t / tp bytes (0 with fused attention)."""
    if c.software.attention == "fused":
        return 0.0
    return 9 * c.model.heads * c.model.seq * tokens(c) / c.parallel.tp


def ring_seconds(nbytes: float, n: int, gbs: float, pr: Params) -> float:
    """An all-gather or reduce-scatter of nbytes over a ring of n at gbs GB/s one way."""
    return 0.0 if n <= 1 else nbytes * (n - 1) / n / (gbs * 1e9 * pr.link_eff)


def tp_seconds(c: Config, pr: Params) -> tuple[float, float]:
    """One layer's tensor-parallel collectives for one microbatch, (forward, backward), exposed.
    Sequence parallel: the forward all-gathers twice (FP8 runs gather FP8) and reduce-scatters
    twice; the backward reduce-scatters and all-gathers the gradients and gathers the inputs again
    for the weight gradients. Without it: two all-reduces each way. Over NVLink (tp <= domain)."""
    p = c.parallel
    act = tokens(c) * c.model.hidden * ACT_BYTES
    gather = act / 2 if c.hardware.dtype == "fp8" else act
    if p.sequence_parallel:
        fwd, bwd = 2 * gather + 2 * act, 4 * act + 2 * gather
    else:
        fwd = bwd = 2 * 2 * act
    exposed = pr.tp_overlap_exposed if c.software.tp_comm_overlap else 1.0
    link = c.gpu.nvlink_gbs
    return (
        exposed * ring_seconds(fwd, p.tp, link, pr),
        exposed * ring_seconds(bwd, p.tp, link, pr),
    )


@dataclass(frozen=True)
class LayerTimes:
    """Seconds of one layer for one microbatch on one GPU."""

    dense: float  # dense matmuls, forward
    attn: float  # attention's s x s matmuls, forward
    elementwise: float  # forward elementwise bytes at HBM bandwidth (softmax included)
    softmax: float  # the materialised softmax (part of elementwise; selective recomputation)
    tp_forward: float  # tensor-parallel collectives, forward
    tp_backward: float  # and backward
    attn_backward_ratio: float  # attention's backward over its forward

    @property
    def forward(self) -> float:
        return self.dense + self.attn + self.elementwise + self.tp_forward

    @property
    def backward(self) -> float:
        """Twice the dense matmuls and the elementwise work, attention's own backward, the
        backward's collectives (recomputation not included: see recompute)."""
        return (
            2 * (self.dense + self.elementwise)
            + self.attn_backward_ratio * self.attn
            + self.tp_backward
        )

    def recompute(self, kind: str) -> float:
        """What the backward runs again: nothing, attention's core, or the whole forward."""
        return {"none": 0.0, "selective": self.attn + self.softmax, "full": self.forward}[kind]


def layer_times(c: Config, pr: Params) -> LayerTimes:
    m, p, g = c.model, c.parallel, c.gpu
    dense, attn = layer_flops(c)
    smallest = min(tokens(c), m.hidden / p.tp)  # the attention projection's inner size is h / tp
    hbm = g.hbm_tbs * 1e12 * pr.hbm_eff
    fused = c.software.attention == "fused"
    attn_rate = g.mamf_bf16 * 1e12 * (pr.attn_eff if fused else pr.attn_eff_materialised)
    tp_f, tp_b = tp_seconds(c, pr)
    return LayerTimes(
        dense=dense / (p.tp * p.cp) / matmul_rate(c, smallest, pr, c.hardware.dtype == "fp8"),
        attn=attn / (p.tp * p.cp) / attn_rate,
        elementwise=elementwise_bytes(c) / hbm,
        softmax=softmax_bytes(c) / hbm,
        tp_forward=tp_f,
        tp_backward=tp_b,
        attn_backward_ratio=2.5 if fused else 2.0,
    )


def head_times(c: Config, pr: Params) -> tuple[float, float]:
    """The output layer and loss for one microbatch on one GPU, forward: (the logits' matmul in
    16-bit: output layers stay out of FP8; the loss reading and writing fp32 logits, 4 t V / tp
    bytes). The backward takes twice each."""
    m, p = c.model, c.parallel
    n = min(tokens(c), m.hidden)
    mm = logits_flops(c) / (p.tp * p.cp) / matmul_rate(c, n, pr, fp8=False)
    loss = 4 * tokens(c) * m.vocab / p.tp / (c.gpu.hbm_tbs * 1e12 * pr.hbm_eff)
    return mm, loss


def split(c: Config) -> list[int]:
    """Transformer layers of each pipeline chunk, in pipeline order (chunk k on rank k mod pp).
    The layers, plus the embedding and the loss where the split counts them, are spread as evenly
    as possible with the remainder on the first chunks (DeepSpeed's partition_uniform; Megatron-
    DeepSpeed and Megatron-LM's --account-for-*-in-pipeline-split count the embedding and loss as
    layers); the counted embedding takes a place in the first chunk, the loss in the last."""
    sw = c.software
    units = c.model.layers + sw.embedding_in_split + sw.loss_in_split
    base, extra = divmod(units, c.chunks)
    out = [base + (k < extra) for k in range(c.chunks)]
    out[0] -= sw.embedding_in_split
    out[-1] -= sw.loss_in_split
    return out


def layer_params(c: Config) -> float:
    m = c.model
    attn = m.hidden * (m.hidden + 2 * kv_width(c)) + m.hidden * m.hidden
    return attn + mlp_matrices(c) * m.hidden * m.ffn + 4 * m.hidden


def total_params(c: Config) -> float:
    """Every layer's weights and one embedding (an untied output layer adds vocab x hidden)."""
    return c.model.layers * layer_params(c) + c.model.vocab * c.model.hidden


def rank_params(c: Config, rank: int) -> float:
    """Parameters one GPU of a pipeline rank holds: its chunks' layers and, on the first and last
    rank, the embedding or the output layer, split by tp."""
    layers = split(c)
    p = c.parallel
    mine = sum(layers[k] for k in range(rank, c.chunks, p.pp)) * layer_params(c)
    ends = (rank == 0) + (rank == p.pp - 1)
    return (mine + ends * c.model.vocab * c.model.hidden) / p.tp


def fullest_ranks(c: Config) -> list[int]:
    """The pipeline ranks that can hold the most: the first and the last (the embedding and the
    output layer; the first also the most microbatches in flight) and the one with the most
    layers (a middle rank, in an uneven split with the embedding counted)."""
    p, layers = c.parallel, split(c)
    held = [sum(layers[k] for k in range(r, c.chunks, p.pp)) for r in range(p.pp)]
    return sorted({0, p.pp - 1, held.index(max(held))})


def blocks_per_domain(c: Config) -> int:
    """Whole pipeline stages (tp x cp x dp GPUs each, placed on domain boundaries) in one NVLink
    domain; 0 when a stage does not fit in one."""
    p = c.parallel
    return c.gpu.nvlink_domain // (p.tp * p.cp * p.dp)


def nic_gbs(c: Config) -> float:
    return c.hardware.nic_gbs or c.gpu.nic_gbs


def send_seconds(c: Config, pr: Params) -> float:
    """One microbatch's activation to the next stage: t h / tp 16-bit values from each tp rank
    (Megatron's scatter-gather), over NVLink when the whole pipeline sits in one NVLink domain,
    else over the NIC (some stage boundary crosses domains, and the slowest link paces the
    pipeline)."""
    p = c.parallel
    if p.pp == 1:
        return 0.0
    nbytes = tokens(c) * c.model.hidden * ACT_BYTES / p.tp
    inside = p.pp <= blocks_per_domain(c)
    return nbytes / ((c.gpu.nvlink_gbs if inside else nic_gbs(c)) * 1e9 * pr.link_eff)


def dp_seconds(c: Config, params: float, pr: Params) -> float:
    """The data-parallel collectives of one step on a GPU holding `params`, all of them (the step
    waits for dp_exposed of it). Replicas are dp x cp (context-parallel ranks hold the same
    weights). Distributed optimizer: reduce-scatter 16-bit gradients, all-gather the parameters
    (1 byte in FP8: the runs keep FP8 weights); otherwise all-reduce the gradients. Over NVLink
    when a stage's tp x cp x dp GPUs fit in one domain, else the NIC."""
    p = c.parallel
    n = p.dp * p.cp
    link = c.gpu.nvlink_gbs if blocks_per_domain(c) >= 1 else nic_gbs(c)
    grads = params * ACT_BYTES
    if not c.software.distributed_optimizer:
        return 2 * ring_seconds(grads, n, link, pr)
    weights = params * (1 if c.hardware.dtype == "fp8" else ACT_BYTES)
    return ring_seconds(grads, n, link, pr) + ring_seconds(weights, n, link, pr)


def optimizer_seconds(c: Config, params: float, pr: Params) -> float:
    """Adam on a GPU's share of the parameters: about 30 bytes of HBM traffic each (fp32 master
    and two moments read and written, the gradient read, the 16-bit weight written)."""
    shard = c.parallel.dp * c.parallel.cp if c.software.distributed_optimizer else 1
    return params / shard * 30 / (c.gpu.hbm_tbs * 1e12 * pr.hbm_eff)
