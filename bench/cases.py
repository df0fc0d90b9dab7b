"""The record of one case (implementation x size) during a run, and its results row.

A case state gathers its rounds' samples; `case_row` turns it into one results.csv row
(bench/schema.py); `restore` rebuilds the states of an interrupted run from its files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench import stats
from bench.settings import Settings
from bench.sizes import Size
from bench.timing import per_step_s
from models.registry import Impl, model_module

RESTORED = ("first_call_s", "loss_rel_err", "update_rel_err", "peak_rss_mb", "ops_per_step")


@dataclass
class CaseState:
    impl: Impl
    size: Size
    status: str = "pending"  # pending until its first round finishes
    error: str = ""
    samples_s: list[float] = field(default_factory=list)  # per step
    round_medians: list[float] = field(default_factory=list)
    done_rounds: set[int] = field(default_factory=set)  # rounds whose samples are on disk
    steps_per_call: int = 1
    first_call_s: float = math.nan
    loss_rel_err: float = math.nan
    update_rel_err: float = math.nan
    peak_rss_mb: float = math.nan
    ops_per_step: float = math.nan

    @property
    def key(self) -> tuple[str, str]:
        return self.impl.name, self.size.label

    def add_round(self, rnd: int, call_ns: list[int], steps_per_call: int) -> None:
        """One round's raw samples (ns per call) into per-step seconds."""
        per_step = per_step_s(np.asarray(call_ns, float), steps_per_call)
        self.steps_per_call = steps_per_call
        self.samples_s += per_step.tolist()
        self.round_medians.append(float(np.median(per_step)))
        self.done_rounds.add(rnd)


def row_device(impl: Impl, run_device: str) -> str:
    """Where an implementation runs in a run on run_device: NumPy, C and the control stay on the CPU."""
    return run_device if run_device in impl.devices else "cpu"


def case_row(st: CaseState, settings: Settings, run_id: str, peaks: dict, workers: dict | None = None) -> dict:
    """The results.csv row of a case, every column of bench/schema.py."""
    cfg = st.size.config()
    mod = model_module(st.size.model)
    flops = mod.flops_per_step(cfg)
    s = stats.summarize(np.asarray(st.samples_s))
    spread = stats.round_spread(st.round_medians)
    noisy = stats.noisy_reason(s, spread) if st.samples_s else ""
    measured = s["n_samples"] > 0
    gflops = flops / s["median_s"] / 1e9 if measured and st.impl.role != "control" else math.nan
    peak = peaks.get(st.impl.framework, {}).get("gflops")
    return {
        "run_id": run_id, "model": settings.model, "impl": st.impl.name,
        "framework": st.impl.framework, "mode": st.impl.mode, "device": row_device(st.impl, settings.device),
        "size": st.size.label, "sweep": st.size.sweep, **mod.describe(cfg),
        "flops_per_step": flops, "params": mod.n_params(cfg), "threads": settings.threads,
        "threads_used": (workers or {}).get(st.impl.framework, {}).get("threads_used", math.nan),
        "status": st.status, "error": st.error, "noisy": bool(noisy), "noisy_reason": noisy,
        **s,
        "rounds": len(st.round_medians), "steps_per_call": st.steps_per_call,
        "median_call_s": s["median_s"] * st.steps_per_call,
        "round_spread": spread,
        "ops_per_step": st.ops_per_step,
        "gflops": gflops,
        "pct_peak": 100 * flops / s["median_s"] / 1e9 / peak if measured and peak else math.nan,
        "first_call_s": st.first_call_s, "loss_rel_err": st.loss_rel_err,
        "update_rel_err": st.update_rel_err, "peak_rss_mb": st.peak_rss_mb,
    }


def restore(states: list[CaseState], results: pd.DataFrame, samples: pd.DataFrame) -> None:
    """Case states from the files of an interrupted run."""
    rows = {(r["impl"], r["size"]): r for r in results.to_dict("records")}
    for (impl, size, rnd), g in sorted(samples.groupby(["impl", "size", "round"]).groups.items()):
        st = next((s for s in states if s.key == (impl, size)), None)
        if st is not None and (impl, size) in rows:
            part = samples.loc[g]
            st.add_round(int(rnd), part["call_ns"].tolist(), int(part["steps_per_call"].iloc[0]))
    for st in states:
        r = rows.get(st.key)
        if r is None:
            continue
        st.status = "pending" if r["status"] == "interrupted" else r["status"]
        st.error = "" if st.status == "pending" else (r["error"] if isinstance(r["error"], str) else "")
        for name in RESTORED:
            setattr(st, name, float(r[name]))
        st.steps_per_call = int(r["steps_per_call"])
