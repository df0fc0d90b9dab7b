"""Memory per GPU of today's stacks, by pipeline rank: weights, gradients and optimizer state, the
activations of the microbatches in flight, and the working memory of the output layer and of a
recomputed layer. A layout whose estimate exceeds the GPU's HBM is refused with the estimate.

Sources: stored activations per layer (Korthikanti et al. 2022, arXiv 2205.05198, section 4: 34
s b h + 5 a s^2 b bytes with dropout, over tp with sequence parallelism), recounted tensor by
tensor so that fused attention keeps no s x s scores (FlashAttention keeps Q, K, V, the output and
a log-sum-exp), grouped-query attention keeps smaller K and V, gated MLPs keep both halves, FP8
keeps its matmul inputs in FP8, and no dropout masks (today's pretraining recipes run without
dropout); state bytes per parameter from Megatron-LM's docs/distrib_optimizer.md: 16-bit weights
and gradients (Megatron-core's default, grad_reduce_in_fp32 off) and 12 bytes of fp32 master and
Adam moments, sharded over dp x cp by the distributed optimizer. FP8 runs keep FP8 weights and their
transposes (fp8_params, as the DGX Cloud recipes run), 2 bytes. Microbatches in flight: 1F1B's rank
r holds min(pp - r, M), GPipe all M, interleaved 1F1B its warm-up forwards plus one ((pp - r - 1)
2 + (v - 1) pp + 1 chunks, Megatron-LM's schedules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.claim.config import Config, ConfigError
from bench.claim.formulas import ACT_BYTES, fullest_ranks, kv_width, rank_params, split, tokens

GIB = 2**30


def layer_activation_bytes(c: Config) -> float:
    """Bytes one layer keeps for its backward, for one microbatch, per GPU, by recomputation."""
    m, p = c.model, c.parallel
    if p.recompute == "full":  # only the layer's input
        return ACT_BYTES * tokens(c) * m.hidden / (p.tp if p.sequence_parallel else 1)
    return full_layer_bytes(c, with_scores=p.recompute == "none")


def full_layer_bytes(c: Config, with_scores: bool = True) -> float:
    """Every tensor a layer's backward needs, per token: the two norms' inputs (16-bit) and
    outputs (the matmul inputs: 1 byte in FP8), Q, K and V, the attention output (and its FP8 copy
    for the projection), the MLP's first output (both halves when gated) and its activation (the
    last matmul's input); with materialised attention, the s x s scores, their softmax and its
    dropout (5 a s per token). Replicated over tp without sequence parallelism: the norms' inputs
    and outputs."""
    m, p = c.model, c.parallel
    e, q = ACT_BYTES, 1 if c.hardware.dtype == "fp8" else ACT_BYTES
    h, f, gated = m.hidden, m.ffn, m.mlp == "swiglu"
    replicated = 2 * e * h + 2 * q * h  # norm inputs, norm outputs
    split_by_tp = (
        e * (h + 2 * kv_width(c))
        + e * h
        + (h if q == 1 else 0)
        + e * f * (2 if gated else 1)
        + q * f
    )
    if with_scores and c.software.attention == "materialised":
        split_by_tp += 5 * m.heads * m.seq
    per_token = (
        (replicated + split_by_tp) / p.tp
        if p.sequence_parallel
        else replicated + split_by_tp / p.tp
    )
    return per_token * tokens(c)


def in_flight_chunks(c: Config, rank: int) -> int:
    """Chunk-microbatches whose activations a rank holds at its peak."""
    p, M = c.parallel, c.microbatches
    if c.schedule == "gpipe":
        return M
    if c.schedule == "1f1b":
        return min(p.pp - rank, M)
    warm = (p.pp - rank - 1) * 2 + (p.virtual_stages - 1) * p.pp
    return min(warm + 1, M * p.virtual_stages)


@dataclass(frozen=True)
class Memory:
    rank: int  # the pipeline rank with the most
    state_gib: float  # weights, gradients, optimizer state
    activations_gib: float  # microbatches in flight and working memory
    capacity_gib: float

    @property
    def total_gib(self) -> float:
        return self.state_gib + self.activations_gib

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.capacity_gib


def state_bytes_per_param(c: Config) -> float:
    shard = c.parallel.dp * c.parallel.cp if c.software.distributed_optimizer else 1
    return ACT_BYTES + ACT_BYTES + 12 / shard


def rank_memory(c: Config, rank: int) -> tuple[float, float]:
    """(state, activations) bytes on one GPU of a pipeline rank."""
    p, m = c.parallel, c.model
    layers = split(c)
    biggest = max(layers[k] for k in range(rank, c.chunks, p.pp))
    acts = in_flight_chunks(c, rank) * biggest * layer_activation_bytes(c)
    if p.recompute == "full":
        acts += full_layer_bytes(c)  # the layer being recomputed
    if rank == p.pp - 1:
        acts += 2 * 4 * tokens(c) * m.vocab / p.tp  # fp32 logits and their gradient
    return rank_params(c, rank) * state_bytes_per_param(c), acts


def memory(c: Config) -> Memory:
    """The estimate of the rank that needs the most."""
    per_rank = [rank_memory(c, r) for r in fullest_ranks(c)]
    r, (state, acts) = max(
        zip(fullest_ranks(c), per_rank, strict=True), key=lambda item: sum(item[1])
    )
    return Memory(r, state / GIB, acts / GIB, c.gpu.hbm_gib)


def check_memory(c: Config) -> Config:
    """ConfigError when the estimate of memory per GPU exceeds the GPU's HBM (estimate printed)."""
    mem = memory(c)
    if not mem.fits:
        raise ConfigError(
            f"[parallel] memory per GPU: about {mem.total_gib:.0f} GiB needed on pipeline rank "
            f"{mem.rank} ({mem.state_gib:.0f} weights, gradients and optimizer state, "
            f"{mem.activations_gib:.0f} activations), the {c.gpu.name} has {mem.capacity_gib:g}"
        )
    return c
