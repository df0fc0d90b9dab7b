"""A `bench claim` configuration: TOML with [model], [parallel], [hardware], [software], read into
frozen dataclasses and checked. A malformed or impossible config raises ConfigError with one line
naming the key and the problem."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from bench.claim.hardware import HARDWARE


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
    kv_heads: int = 0  # 0: as many as heads (multi-head attention)
    mlp: str = "gelu"  # gelu: two matrices; swiglu: three


@dataclass(frozen=True)
class Parallel:
    tp: int
    pp: int
    dp: int
    microbatch: int  # sequences per microbatch
    global_batch: int  # sequences per step
    cp: int = 1
    virtual_stages: int = 1
    schedule: str = ""  # 1f1b (v = 1) or interleaved-1f1b (v > 1) unless named: gpipe, 1f1b, interleaved-1f1b
    recompute: str = "none"  # none, selective or full
    sequence_parallel: bool = False


@dataclass(frozen=True)
class Hardware:
    gpu: str
    gpus_per_node: int = 8
    dtype: str = "bf16"  # fp16, bf16 or fp8


@dataclass(frozen=True)
class Software:
    framework: str = "torch.eager"  # whose measured host cost per op (bench/claim/host.py): a registry name
    host: str = "xeon"  # xeon or grace, or host_factor
    host_factor: float = 0.0  # host CPU time per op relative to this project's machine; 0: from `host`
    kernels_per_layer: int = 0  # GPU kernels of one layer's forward per microbatch; 0: the model's count
    cuda_graphs: bool = False  # launch whole graphs: the host cost per kernel is not paid per kernel
    dp_overlap: float = 0.8  # share of the data-parallel gradient reduction hidden behind the backward
    distributed_optimizer: bool = True  # optimizer state sharded over dp (ZeRO-1)


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


SECTIONS = {"model": Model, "parallel": Parallel, "hardware": Hardware, "software": Software}
CHOICES = {"mlp": ("gelu", "swiglu"), "recompute": ("none", "selective", "full"), "dtype": ("fp16", "bf16", "fp8"),
           "host": ("xeon", "grace"), "schedule": ("", "gpipe", "1f1b", "interleaved-1f1b")}


TYPES = {"int": int, "float": float, "str": str, "bool": bool}


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
    out = {}
    for key, value in raw.items():
        kind = TYPES[known[key].type]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"[{name}] {key}: expected {kind.__name__}, got {value!r}")
        if kind in (int, float) and value < 0:
            raise ConfigError(f"[{name}] {key}: must not be negative, got {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"[{name}] {key}: {value!r} is not one of {', '.join(c for c in CHOICES[key] if c)}")
        out[key] = value
    return cls(**out)


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


def check(c: Config) -> Config:
    """ConfigError for a layout that cannot run: the key and why."""
    m, p, h = c.model, c.parallel, c.hardware
    for sec, obj, keys in (("model", m, ("layers", "hidden", "ffn", "heads", "seq", "vocab")),
                           ("parallel", p, ("tp", "pp", "dp", "cp", "microbatch", "global_batch", "virtual_stages"))):
        for k in keys:
            if getattr(obj, k) < 1:
                raise ConfigError(f"[{sec}] {k}: must be at least 1, got {getattr(obj, k)}")
    if h.gpu not in HARDWARE:
        raise ConfigError(f"[hardware] gpu: unknown GPU {h.gpu!r} (known: {', '.join(HARDWARE)})")
    if m.hidden % m.heads:
        raise ConfigError(f"[model] heads: {m.heads} does not divide hidden {m.hidden}")
    kv = m.kv_heads or m.heads
    if m.heads % kv:
        raise ConfigError(f"[model] kv_heads: {kv} does not divide heads {m.heads}")
    if m.heads % p.tp:
        raise ConfigError(f"[parallel] tp: {p.tp} does not divide heads {m.heads}")
    if kv % p.tp and p.tp % kv:
        raise ConfigError(f"[parallel] tp: {p.tp} and kv_heads {kv} do not divide one another")
    if m.ffn % p.tp:
        raise ConfigError(f"[parallel] tp: {p.tp} does not divide ffn {m.ffn}")
    if m.layers % (p.pp * p.virtual_stages):
        raise ConfigError(f"[parallel] pp: layers {m.layers} not divisible by pp x virtual_stages = "
                          f"{p.pp * p.virtual_stages}")
    if m.seq % p.cp:
        raise ConfigError(f"[parallel] cp: {p.cp} does not divide seq {m.seq}")
    if p.global_batch % (p.microbatch * p.dp):
        raise ConfigError(f"[parallel] global_batch: {p.global_batch} is not divisible by microbatch x dp = "
                          f"{p.microbatch * p.dp}")
    if p.virtual_stages > 1 and c.schedule != "interleaved-1f1b":
        raise ConfigError(f"[parallel] schedule: {c.schedule} takes virtual_stages = 1")
    if c.schedule == "interleaved-1f1b" and c.microbatches % p.pp:
        raise ConfigError(f"[parallel] global_batch: interleaved 1F1B needs the microbatches per pipeline "
                          f"({c.microbatches}) to be a multiple of pp {p.pp}")
    if p.tp > HARDWARE[h.gpu].nvlink_domain or h.gpus_per_node < 1:
        raise ConfigError(f"[parallel] tp: {p.tp} exceeds the {h.gpu}'s NVLink domain of "
                          f"{HARDWARE[h.gpu].nvlink_domain} GPUs")
    return c


def with_changes(c: Config, **changes) -> Config:
    """The config with some [parallel], [software] or [model] keys changed, checked again."""
    parts = {"model": c.model, "parallel": c.parallel, "hardware": c.hardware, "software": c.software}
    for key, value in changes.items():
        sec = next(s for s, obj in parts.items() if key in {f.name for f in fields(obj)})
        parts[sec] = replace(parts[sec], **{key: value})
    return check(Config(**parts, name=c.name))
