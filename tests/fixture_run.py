"""A small synthetic run directory with known truth: t = a + FLOPs / r + (extra layer ops) x cost
per op, written through the real results code. jax.scan and c.ref are fused: their timed calls
hold K = 8 steps each, as in a real run; c.ref is the floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.results import RunDir
from bench.runmeta import RunMeta
from bench.schema import SCHEMA_VERSION
from bench.sizes import mlp
from bench.sweep.cases import CaseState, case_row
from bench.sweep.settings import Settings
from bench.timing import Budget
from models.mlp.model import MLPConfig, flops_per_step, ops_per_step
from models.registry import REGISTRY

TRUTH = {  # impl -> (fixed seconds a, rate FLOP/s r, seconds per layer op beyond L = 2)
    "numpy.loop": (50e-6, 100e9, 1.0e-6),
    "torch.eager": (200e-6, 150e9, 4.0e-6),
    "jax.scan": (1.5e-6, 150e9, 0.1e-6),
    "c.ref": (1e-6, 150e9, 0.05e-6),
}
CONTROL_S = 80e-9
WIDTH = [(1, 1), (32, 32), (128, 128), (512, 512), (1024, 1024)]
DEPTH = [1, 4, 8]
PEAK_GFLOPS = 200.0
COPY_GBYTES = 20.0
FUSED_K = 8
ROUNDS = 4
PROCESS_SD = 0.01  # each round's process shifts all its samples by this much (log scale)


def true_time(impl: str, cfg: MLPConfig) -> float:
    """The step time the fixture draws around, seconds."""
    if impl == "null.noop":
        return CONTROL_S
    a, r, per_op = TRUTH[impl]
    extra_ops = ops_per_step(cfg) - ops_per_step(
        MLPConfig(batch=cfg.batch, width=cfg.width, depth=2)
    )
    return a + flops_per_step(cfg) / r + per_op * extra_ops


def make_run(path: Path, seed: int = 0, noise: float = 0.02) -> Path:
    rng = np.random.default_rng(seed)
    sizes = [mlp(b, h, 2, "width") for b, h in WIDTH] + [mlp(32, 32, d, "depth") for d in DEPTH]
    settings = Settings("mlp", list(TRUTH) + ["null.noop"], sizes, 2, ROUNDS, Budget(), 60.0)
    run = RunDir.create(path)
    peaks = {
        fw: {"n": 2048, "gflops": PEAK_GFLOPS, "gflops_best": PEAK_GFLOPS * 1.05, "device": "cpu"}
        for fw in ("numpy", "torch", "jax", "c")
    }
    peaks["numpy"]["copy_gbytes_per_s"] = COPY_GBYTES
    rows, samples, rounds = [], [], []
    for size in sizes:
        for name in settings.impls:
            st = CaseState(REGISTRY["mlp"][name], size, status="ok")
            st.framework_ops_per_step = (
                0 if name == "null.noop" else 7 * ops_per_step(size.config())
            )
            k = FUSED_K if st.impl.fused else 1
            st.first_call_s = 1.5 if name == "jax.scan" else 0.01
            for rnd in range(ROUNDS):
                offset = np.exp(rng.normal(0, PROCESS_SD))
                # s per step
                x = true_time(name, size.config()) * offset * (1 + noise * rng.standard_normal(40))
                call_ns = [int(round(v * k * 1e9)) for v in x]
                samples += [
                    (SCHEMA_VERSION, name, size.label, rnd, i, v, k) for i, v in enumerate(call_ns)
                ]
                rounds.append(st.add_round(rnd, call_ns, k, st.first_call_s, 1000 + rnd))
            st.loss_rel_err, st.update_rel_err = (
                (np.nan, np.nan) if name == "null.noop" else (1e-7, 1e-5)
            )
            rows.append(case_row(st, settings, peaks))
    run.append_samples(samples)
    run.append_rounds([r.row() for r in rounds])
    run.write_results(rows)
    run.write_meta(
        RunMeta.from_json(
            {
                "run_id": path.name,
                "kind": "sweep",
                "status": "complete",
                "created_utc": "2026-01-01T00:00:00Z",
                "argv": ["fixture"],
                "settings": {
                    "model": "mlp",
                    "threads": 2,
                    "rounds": ROUNDS,
                    "budget": {"seconds": 0.5},
                },
                "machine": {
                    "cpu_model": "fixture CPU",
                    "cores_logical": 2,
                    "memory_total_gb": 1,
                    "os": "test",
                    "python": "3",
                    "versions": {"numpy": "x"},
                    "git_commit": "abc123",
                },
                "workers": {},
                "peaks": peaks,
            }
        )
    )
    return path
