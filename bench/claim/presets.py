"""Named configurations: the claim's own (`seed`) and one per published run, each as it was run.

published_runs.csv (Korthikanti et al. 2022, Table 5: eight A100 runs of 2022 Megatron-LM, which
materialised attention's scores) and modern_runs.csv (eighteen runs of 2022-2025 stacks on A100,
H100, B200 and GB200) are copies of shared/claim/. Each row becomes a config of its own columns
only (model, parallel, hardware, and the `attention` and `fp8_recipe` software keys): every other
key keeps its default, so the defaults must serve every row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bench.claim.config import Config, from_dict

HERE = Path(__file__).resolve().parent
TABLES = {"table5": HERE / "published_runs.csv", "modern": HERE / "modern_runs.csv"}
MODEL_KEYS = ("layers", "hidden", "ffn", "heads", "seq", "vocab")
PARALLEL_KEYS = ("tp", "pp", "dp", "cp", "microbatch", "global_batch", "virtual_stages")

# The claim: a 10T dense model on 220,000 GB300 (NVL72, one 800 Gb/s NIC per GPU), pipeline-heavy.
# Shape and layout are ours (the claim gives neither): 200 layers x 64,512 wide = 10.0 T
# parameters; tp 16 inside an NVL72 domain, pp 50 with 2 virtual stages, dp 275, 100 microbatches
# per pipeline. `bench claim --preset seed --search` finds the best layout for each stack.
SEED = {
    "model": {
        "layers": 200,
        "hidden": 64512,
        "ffn": 258048,
        "heads": 512,
        "seq": 4096,
        "vocab": 131072,
    },
    "parallel": {
        "tp": 16,
        "pp": 50,
        "dp": 275,
        "microbatch": 1,
        "global_batch": 27500,
        "virtual_stages": 2,
        "recompute": "selective",
        "sequence_parallel": True,
    },
    "hardware": {"gpu": "GB300", "gpus_per_node": 72, "dtype": "bf16"},
    "software": {"framework": "torch.eager", "host": "grace"},
}


@dataclass(frozen=True)
class Run:
    config: Config
    measured_s: float
    source: str
    table: str  # table5 or modern

    @property
    def model_name(self) -> str:
        """The model a run trains, for leave-one-model-out (runs of one shape share it)."""
        m = self.config.model
        return f"{m.layers}x{m.hidden}"


def _config(row: dict, table: str) -> Config:
    raw = {
        "model": {k: int(row[k]) for k in MODEL_KEYS},
        "parallel": {k: int(row.get(k) or 1) for k in PARALLEL_KEYS}
        | {"recompute": row["recompute"], "sequence_parallel": row["sequence_parallel"] == "true"},
        "hardware": {"gpu": row["gpu"], "dtype": row["dtype"]},
        "software": {"attention": row.get("attention") or "materialised"},
    }
    if row.get("kv_heads"):
        raw["model"]["kv_heads"] = int(row["kv_heads"])
    if row.get("mlp"):
        raw["model"]["mlp"] = row["mlp"]
    if row.get("gpus_per_node"):
        raw["hardware"]["gpus_per_node"] = int(row["gpus_per_node"])
    if row.get("fp8_recipe"):
        raw["software"]["fp8_recipe"] = row["fp8_recipe"]
    c = from_dict(raw, row["run"])
    if c.gpus != int(row["gpus"]):
        raise ValueError(f"{table} {row['run']}: tp x pp x dp x cp = {c.gpus}, gpus {row['gpus']}")
    return c


def published(tables: tuple[str, ...] = ("table5", "modern")) -> list[Run]:
    """Every published run of the tables, as it was run (Table 5 has no attention column: its
    runs materialised the scores, 2022 Megatron-LM)."""
    out = []
    for table in tables:
        with open(TABLES[table], newline="") as f:
            for row in csv.DictReader(f):
                out.append(
                    Run(_config(row, table), float(row["measured_step_s"]), row["source"], table)
                )
    return out


def presets() -> dict[str, Config]:
    return {"seed": from_dict(SEED, "seed"), **{r.config.name: r.config for r in published()}}
