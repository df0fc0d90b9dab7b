"""A run's settings, and their form in run.json (from which `--resume` rebuilds them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.schema import SCHEMA_VERSION
from bench.sizes import Size
from bench.timing import Budget


@dataclass(frozen=True)
class Settings:
    model: str
    impls: list[str]
    sizes: list[Size]
    threads: int
    rounds: int
    budget: Budget
    case_timeout_s: float
    device: str = "cpu"  # cpu or cuda (resolved from --device auto before a run starts)
    tf32: bool = False  # TF32 matmuls on CUDA for torch and jax (--tf32); fp32 otherwise

    def to_json(self) -> dict:
        d = asdict(self)
        d["sizes"] = [z.to_json() for z in self.sizes]
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> Settings:
        """KeyError or TypeError when the stored settings are incomplete."""
        return cls(
            model=d["model"], impls=list(d["impls"]), sizes=[Size.from_json(z) for z in d["sizes"]],
            threads=int(d["threads"]), rounds=int(d["rounds"]), budget=Budget(**d["budget"]),
            case_timeout_s=float(d["case_timeout_s"]), device=d.get("device", "cpu"), tf32=bool(d.get("tf32", False)),
        )
