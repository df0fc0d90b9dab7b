"""A small synthetic run directory with known truth: t = a + FLOPs / r, per-op cost on depth.
jax.scan is fused: its timed calls hold K = 8 steps each, as in a real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.cases import CaseState, case_row
from bench.results import RunDir
from bench.schema import SCHEMA_VERSION
from bench.settings import Settings
from bench.sizes import mlp
from bench.timing import Budget
from models.mlp.model import flops_per_step
from models.registry import REGISTRY

TRUTH = {  # impl -> (fixed seconds a, rate FLOP/s r, seconds per op)
    "numpy.loop": (50e-6, 100e9, 1.0e-6),
    "torch.eager": (200e-6, 150e9, 4.0e-6),
    "jax.scan": (2e-6, 150e9, 0.1e-6),
}
OPS_PER_LAYER = 18
WIDTH = [(1, 1), (32, 32), (128, 128), (512, 512), (1024, 1024)]
DEPTH = [1, 4, 8]
PEAK_GFLOPS = 200.0
FUSED_K = 8
ROUNDS = 3


def make_run(path: Path, seed: int = 0, noise: float = 0.02) -> Path:
    rng = np.random.default_rng(seed)
    sizes = [mlp(b, h, 2, "width") for b, h in WIDTH] + [mlp(32, 32, d, "depth") for d in DEPTH]
    settings = Settings("mlp", list(TRUTH) + ["null.noop"], sizes, 2, ROUNDS, Budget(), 60.0)
    run = RunDir.create(path)
    peaks = {fw: {"n": 2048, "gflops": PEAK_GFLOPS, "gflops_best": PEAK_GFLOPS * 1.05} for fw in ("numpy", "torch", "jax")}
    rows, samples, rounds = [], [], []
    for size in sizes:
        for name in settings.impls:
            st = CaseState(REGISTRY["mlp"][name], size, status="ok")
            cfg = size.config()
            ops = OPS_PER_LAYER * (cfg.depth + 1)
            st.ops_per_step = ops if name != "null.noop" else 0
            if name == "null.noop":
                true_t = 80e-9
            else:
                a, r, per_op = TRUTH[name]
                true_t = a + flops_per_step(cfg) / r + per_op * (ops - OPS_PER_LAYER * 3)
            k = FUSED_K if st.impl.fused else 1
            st.first_call_s = 1.5 if name == "jax.scan" else 0.01
            for rnd in range(ROUNDS):
                x = true_t * (1 + noise * rng.standard_normal(40))  # seconds per step
                call_ns = [int(round(v * k * 1e9)) for v in x]
                samples += [(SCHEMA_VERSION, name, size.label, rnd, i, v, k) for i, v in enumerate(call_ns)]
                rounds.append(st.add_round(rnd, call_ns, k, st.first_call_s, 1000 + rnd))
            st.loss_rel_err, st.update_rel_err = (np.nan, np.nan) if name == "null.noop" else (1e-7, 1e-5)
            rows.append(case_row(st, settings, path.name, peaks))
    run.append_samples(samples)
    run.append_rounds(rounds)
    run.write_results(rows)
    run.write_meta({
        "run_id": path.name, "status": "complete", "created_utc": "2026-01-01T00:00:00Z", "argv": ["fixture"],
        "settings": {"threads": 2, "rounds": 3, "budget": {"seconds": 0.5}},
        "machine": {"cpu_model": "fixture CPU", "cores_logical": 2, "memory_total_gb": 1, "os": "test",
                    "python": "3", "versions": {"numpy": "x"}, "git_commit": None},
        "workers": {}, "peaks": peaks,
    })
    return path
