"""Named configurations: the claim's own (`seed`) and one per published run (published_runs.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

from bench.claim.config import Config, from_dict

RUNS = Path(__file__).resolve().parent / "published_runs.csv"  # a copy of shared/claim/published_runs.csv

# The claim: a 10T dense model on 220,000 GB300 (NVL72, one 800 Gb/s NIC per GPU), pipeline-heavy.
# Shape and layout are ours (the claim gives neither): 200 layers x 64,512 wide = 10.0 T parameters;
# tp 16 inside an NVL72 domain, pp 50 with 2 virtual stages (2 layers per chunk), dp 275; 100
# microbatches per pipeline (2 x pp); full recomputation so the first stage's 50 microbatches in
# flight fit 288 GB.
SEED = {
    "model": {"layers": 200, "hidden": 64512, "ffn": 258048, "heads": 512, "seq": 4096, "vocab": 131072},
    "parallel": {"tp": 16, "pp": 50, "dp": 275, "microbatch": 1, "global_batch": 27500, "virtual_stages": 2,
                 "recompute": "full", "sequence_parallel": True},
    "hardware": {"gpu": "GB300", "gpus_per_node": 72, "dtype": "bf16"},
    "software": {"framework": "torch.eager", "host": "grace"},
}


def published() -> list[tuple[Config, float, str]]:
    """(config, measured seconds per step, source) of every published run."""
    out = []
    with open(RUNS, newline="") as f:
        for r in csv.DictReader(f):
            raw = {"model": {k: int(r[k]) for k in ("layers", "hidden", "ffn", "heads", "seq", "vocab")},
                   "parallel": {k: int(r[k]) for k in ("tp", "pp", "dp", "microbatch", "global_batch", "virtual_stages")}
                   | {"recompute": r["recompute"], "sequence_parallel": r["sequence_parallel"] == "true"},
                   "hardware": {"gpu": r["gpu"], "dtype": r["dtype"]}}
            out.append((from_dict(raw, r["run"]), float(r["measured_step_s"]), r["source"]))
    return out


def presets() -> dict[str, Config]:
    return {"seed": from_dict(SEED, "seed"), **{c.name: c for c, _, _ in published()}}
