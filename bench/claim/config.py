"""A `bench claim` configuration: TOML with [model], [parallel], [hardware], [software], read into
frozen dataclasses and checked. A malformed or impossible config raises ConfigError with one line
naming the key and the problem.

Each [software] key has a default that serves every published run the model is validated on
(`bench claim --validate` feeds each run with its CSV columns only), and a comment naming the
source of that default.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from bench.claim.hardware import GPU, HARDWARE


class ConfigError(ValueError):
    """One line: the key and what is wrong with it."""


@dataclass(frozen=True)
class Model:
    layers: int
    hidden: int
    ffn: int
    heads: int
    seq: int
    vocab: int
    kv_heads: int = 0  # 0: as many as heads (multi-head attention); fewer: grouped-query attention
    mlp: str = "gelu"  # gelu, relu, sqrelu (squared ReLU): two matrices; swiglu: three


@dataclass(frozen=True)
class Parallel:
    tp: int
    pp: int
    dp: int
    microbatch: int  # sequences per microbatch
    global_batch: int  # sequences per step
    cp: int = 1
    virtual_stages: int = 1
    schedule: str = ""  # gpipe, 1f1b or interleaved-1f1b; "": 1f1b (v = 1) or interleaved (v > 1)
    recompute: str = "none"  # none, selective or full
    sequence_parallel: bool = False


@dataclass(frozen=True)
class Hardware:
    gpu: str
    gpus_per_node: int = 8  # GPUs per host (informational: the NVLink domain is the GPU's own)
    dtype: str = "bf16"  # fp16, bf16 or fp8 (the matmuls' inputs; activations stay 16-bit)
    nic_gbs: float = 0.0  # scale-out bandwidth per GPU, GB/s one way; 0: the GPU table's


@dataclass(frozen=True)
class Software:
    framework: str = "torch.eager"  # whose measured host cost per op (bench/claim/host.py)
    host: str = "xeon"  # xeon or grace, or host_factor
    host_factor: float = 0.0  # host CPU time per op relative to this project's machine
    kernels_per_layer: int = 0  # GPU kernels of one layer's forward; 0: the model's count
    # Defaults and their sources (bench/claim/README: every published run fed with these):
    attention: str = "fused"  # fused (flash/cuDNN: no s x s scores kept; Megatron-core with
    #                           TransformerEngine, NeMo since 2023) or materialised (2022 Megatron)
    fp8_recipe: str = "tensor"  # tensor (per-tensor delayed scaling, TransformerEngine's default
    #                             recipe) or block (MX block scaling, Blackwell's tensor cores)
    cuda_graphs: bool = False  # whole-graph launches (Megatron-core --enable-cuda-graph: off)
    tp_comm_overlap: bool = False  # tensor-parallel collectives hidden behind the matmuls
    #                                (Megatron-core --tp-comm-overlap: off; the validation fits
    #                                the published runs' collectives as exposed)
    distributed_optimizer: bool = True  # optimizer state sharded over dp x cp (Megatron-core
    #                                     --use-distributed-optimizer, every run in both tables)
    embedding_in_split: bool = False  # the embedding counts as a layer in the pipeline split
    loss_in_split: bool = False  # the loss counts as a layer in the pipeline split (Megatron-LM
    #                              --account-for-{embedding,loss}-in-pipeline-split: off)


@dataclass(frozen=True)
class Config:
    model: Model
    parallel: Parallel
    hardware: Hardware
    software: Software = field(default_factory=Software)
    name: str = ""

    @property
    def gpus(self) -> int:
        p = self.parallel
        return p.tp * p.pp * p.dp * p.cp

    @property
    def microbatches(self) -> int:
        """Per pipeline per step: global batch / (microbatch x dp)."""
        return self.parallel.global_batch // (self.parallel.microbatch * self.parallel.dp)

    @property
    def schedule(self) -> str:
        p = self.parallel
        return p.schedule or ("interleaved-1f1b" if p.virtual_stages > 1 else "1f1b")

    @property
    def gpu(self) -> GPU:
        return HARDWARE[self.hardware.gpu]

    @property
    def chunks(self) -> int:
        """Pipeline chunks (stages of the split): pp x virtual stages."""
        return self.parallel.pp * self.parallel.virtual_stages


SECTIONS = {"model": Model, "parallel": Parallel, "hardware": Hardware, "software": Software}
CHOICES = {
    "mlp": ("gelu", "relu", "sqrelu", "swiglu"),
    "recompute": ("none", "selective", "full"),
    "dtype": ("fp16", "bf16", "fp8"),
    "host": ("xeon", "grace"),
    "schedule": ("", "gpipe", "1f1b", "interleaved-1f1b"),
    "attention": ("fused", "materialised"),
    "fp8_recipe": ("tensor", "block"),
}
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _value(section: str, key: str, kind: type, value):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"[{section}] {key}: expected {kind.__name__}, got {value!r}")
    if kind in (int, float) and value < 0:
        raise ConfigError(f"[{section}] {key}: must not be negative, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        allowed = ", ".join(c for c in CHOICES[key] if c)
        raise ConfigError(f"[{section}] {key}: {value!r} is not one of {allowed}")
    return value


def _section(cls, name: str, raw: dict):
    """One TOML table as cls: known keys, required ones present, each of its field's type."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"[{name}] {unknown[0]}: unknown key (allowed: {', '.join(known)})")
    missing = [k for k, f in known.items() if k not in raw and f.default is MISSING]
    if missing:
        raise ConfigError(f"[{name}] {missing[0]}: missing")
    return cls(**{k: _value(name, k, TYPES[known[k].type], v) for k, v in raw.items()})


def from_dict(raw: dict, name: str = "") -> Config:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"[{unknown[0]}]: unknown section (allowed: {', '.join(SECTIONS)})")
    for sec in ("model", "parallel", "hardware"):
        if sec not in raw:
            raise ConfigError(f"[{sec}]: missing section")
    parts = {sec: _section(cls, sec, raw.get(sec, {})) for sec, cls in SECTIONS.items()}
    return check(Config(**parts, name=name))


def load(path: Path) -> Config:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return from_dict(raw, Path(path).stem)


def _positive(c: Config) -> None:
    for sec, obj, keys in (
        ("model", c.model, ("layers", "hidden", "ffn", "heads", "seq", "vocab")),
        (
            "parallel",
            c.parallel,
            ("tp", "pp", "dp", "cp", "microbatch", "global_batch", "virtual_stages"),
        ),
    ):
        for k in keys:
            if getattr(obj, k) < 1:
                raise ConfigError(f"[{sec}] {k}: must be at least 1, got {getattr(obj, k)}")


def _check_model(c: Config) -> None:
    m, p = c.model, c.parallel
    kv = m.kv_heads or m.heads
    if m.hidden % m.heads:
        raise ConfigError(f"[model] heads: {m.heads} does not divide hidden {m.hidden}")
    if m.heads % kv:
        raise ConfigError(f"[model] kv_heads: {kv} does not divide heads {m.heads}")
    if m.heads % p.tp:
        raise ConfigError(f"[parallel] tp: {p.tp} does not divide heads {m.heads}")
    if kv % p.tp and p.tp % kv:
        raise ConfigError(f"[parallel] tp: {p.tp} and kv_heads {kv} do not divide one another")
    if m.ffn % p.tp:
        raise ConfigError(f"[parallel] tp: {p.tp} does not divide ffn {m.ffn}")
    if m.seq % p.cp:
        raise ConfigError(f"[parallel] cp: {p.cp} does not divide seq {m.seq}")


def _check_pipeline(c: Config) -> None:
    p, sw = c.parallel, c.software
    units = c.model.layers + sw.embedding_in_split + sw.loss_in_split
    if units < c.chunks:
        raise ConfigError(
            f"[parallel] pp: {units} layers (with the embedding and loss counted as "
            f"the split counts them) cannot fill pp x virtual_stages = {c.chunks}"
        )
    if p.global_batch % (p.microbatch * p.dp):
        raise ConfigError(
            f"[parallel] global_batch: {p.global_batch} is not divisible by "
            f"microbatch x dp = {p.microbatch * p.dp}"
        )
    if p.virtual_stages > 1 and c.schedule != "interleaved-1f1b":
        raise ConfigError(f"[parallel] schedule: {c.schedule} takes virtual_stages = 1")
    if c.schedule == "interleaved-1f1b" and c.microbatches % p.pp:
        raise ConfigError(
            f"[parallel] global_batch: interleaved 1F1B needs the microbatches per "
            f"pipeline ({c.microbatches}) to be a multiple of pp {p.pp}"
        )


def _check_hardware(c: Config) -> None:
    h, g = c.hardware, HARDWARE.get(c.hardware.gpu)
    if g is None:
        raise ConfigError(f"[hardware] gpu: unknown GPU {h.gpu!r} (known: {', '.join(HARDWARE)})")
    if c.parallel.tp > g.nvlink_domain:
        raise ConfigError(
            f"[parallel] tp: {c.parallel.tp} exceeds the {g.name}'s NVLink domain "
            f"of {g.nvlink_domain} GPUs"
        )
    if h.dtype == "fp8" and not g.fp8_tflops:
        raise ConfigError(f"[hardware] dtype: the {g.name} has no FP8 tensor cores")
    if h.dtype == "fp8" and c.software.fp8_recipe == "block" and not g.mx_fp8:
        raise ConfigError(
            f"[software] fp8_recipe: MX block scaling needs Blackwell's tensor "
            f"cores; the {g.name} has none"
        )


def check(c: Config) -> Config:
    """ConfigError for a layout that cannot run: the key and why."""
    _positive(c)
    _check_hardware(c)
    _check_model(c)
    _check_pipeline(c)
    return c


def with_changes(c: Config, **changes) -> Config:
    """The config with some keys of any section changed (by key name), checked again."""
    parts = {
        "model": c.model,
        "parallel": c.parallel,
        "hardware": c.hardware,
        "software": c.software,
    }
    for key, value in changes.items():
        sec = next(s for s, obj in parts.items() if key in {f.name for f in fields(obj)})
        parts[sec] = replace(parts[sec], **{key: value})
    return check(Config(**parts, name=c.name))
