"""The record of one case (implementation x size) during a run, and its results row.

A case state gathers its rounds' samples; `case_row` turns it into one results.csv row
(bench/schema.py); `restore` rebuilds the states of an interrupted run from its files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench import frameworks, stats
from bench.schema import SCHEMA_VERSION
from bench.sizes import Size
from bench.sweep.settings import Settings
from bench.timing import per_step_s
from models.registry import Impl, model_module

RESTORED = (
    "first_call_s",
    "loss_rel_err",
    "update_rel_err",
    "peak_rss_mb",
    "framework_ops_per_step",
)


@dataclass
class CaseState:
    impl: Impl
    size: Size
    status: str = "pending"  # pending until its first round finishes
    error: str = ""
    samples_s: list[float] = field(default_factory=list)  # per step, all processes
    # one per process: the unit of replication
    round_medians: list[float] = field(default_factory=list)
    round_iqr_rel: list[float] = field(default_factory=list)  # IQR / median inside each process
    # first call of each process's fresh build
    first_calls: list[float] = field(default_factory=list)
    done_rounds: set[int] = field(default_factory=set)  # rounds whose samples are on disk
    steps_per_call: int = 1
    first_call_s: float = math.nan
    loss_rel_err: float = math.nan
    update_rel_err: float = math.nan
    peak_rss_mb: float = math.nan
    framework_ops_per_step: float = math.nan  # counted by the implementation (info["op_unit"])
    # the step's describe(), after its first round's timing
    info: dict = field(default_factory=dict)
    # the round's samples so far, chunk by chunk (fold)
    chunk_ns: list[int] = field(default_factory=list)
    # the round's process's first call, from its fresh build's chunk
    chunk_first_s: float = math.nan
    chunk_pid: int = 0  # the process the round's chunks so far came from

    @property
    def key(self) -> tuple[str, str]:
        return self.impl.name, self.size.label

    def add_round(
        self,
        rnd: int,
        call_ns: list[int],
        steps_per_call: int,
        first_call_s: float = math.nan,
        pid: int = 0,
    ) -> tuple:
        """One round (one worker process): its raw samples (ns per call) into per-step seconds.
        Returns the round's rounds.csv row."""
        # pragma: no mutate (equivalent: dtype)
        per_step = per_step_s(np.asarray(call_ns, float), steps_per_call)
        self.steps_per_call = steps_per_call
        self.samples_s += per_step.tolist()
        self.round_medians.append(float(np.median(per_step)))
        self.round_iqr_rel.append(stats.iqr_rel(per_step))
        self.first_calls.append(first_call_s)
        self.done_rounds.add(rnd)
        return (
            SCHEMA_VERSION,
            self.impl.name,
            self.size.label,
            rnd,
            pid,
            first_call_s,
            per_step.size,
            self.round_medians[-1],
            self.round_iqr_rel[-1],
            steps_per_call,
        )

    def fold(
        self, reply, rnd: int, chunk: int = 0, last: bool = True
    ) -> tuple[tuple, list[int]] | None:
        """A worker's CaseReply to one of a round's sampling chunks into this case. After the round's
        last chunk (`last`: the worker's reply.last): (its rounds.csv row, the round's samples in ns,
        every chunk's) when that chunk brought samples; a round whose last chunk never came (a
        crash, a stop) or failed leaves nothing. A chunk from another process than the round's
        earlier ones (the framework's worker died in another case's turn, and a new one built this
        case afresh) starts the round again from it: a round is one process."""
        self.peak_rss_mb = reply.peak_rss_mb
        if reply.first_call_s is not None and math.isnan(
            self.first_call_s
        ):  # the first process's build
            self.first_call_s = reply.first_call_s
        if reply.loss_rel_err is not None:
            self.loss_rel_err, self.update_rel_err = reply.loss_rel_err, reply.update_rel_err
        self.status, self.error = reply.status, reply.error
        if chunk == 0 or reply.pid != self.chunk_pid:
            self.chunk_ns, self.chunk_first_s, self.chunk_pid = [], math.nan, reply.pid
        if reply.first_call_s is not None:
            self.chunk_first_s = reply.first_call_s
        self.chunk_ns += reply.samples_ns or []
        if (
            not last or not reply.samples_ns
        ):  # a failed last chunk leaves its round unwritten, as a failed round
            return None
        ns, first = self.chunk_ns, self.chunk_first_s
        self.chunk_ns, self.chunk_first_s = [], math.nan
        return self.add_round(rnd, ns, reply.steps_per_call, first, reply.pid), ns


def case_row(
    st: CaseState, settings: Settings, run_id: str, peaks: dict, workers: dict | None = None
) -> dict:
    """The results.csv row of a case, every column of bench/schema.py."""
    cfg = st.size.config()
    mod = model_module(st.size.model)
    flops = mod.flops_per_step(cfg)
    s = stats.pooled(np.asarray(st.samples_s))
    # base rounds first (restore sorts by round); a row without extra rounds has no more than these
    u = stats.across_units(st.round_medians, st.round_iqr_rel, first=settings.rounds)
    noisy = stats.noisy_reason(u)  # '' without samples: a NaN median is not judged
    # NaN without samples
    gflops = flops / u["median_s"] / 1e9 if st.impl.role != "control" else math.nan
    later = [f for f in st.first_calls[1:] if math.isfinite(f)]
    peak = peaks.get(st.impl.framework, {}).get("gflops")
    device = frameworks.run_device(st.impl, settings.device)
    machine = max(
        (p["gflops"] for p in peaks.values() if "gflops" in p and p.get("device", "cpu") == device),
        default=None,
    )
    return {
        "run_id": run_id,
        "model": settings.model,
        "impl": st.impl.name,
        "framework": st.impl.framework,
        "mode": st.impl.mode,
        "role": st.impl.role or ("fused" if st.impl.fused else ""),
        "device": frameworks.run_device(st.impl, settings.device),
        "size": st.size.label,
        "sweep": st.size.sweep,
        **mod.describe(cfg),
        "flops_per_step": flops,
        "other_flops_per_step": mod.other_flops_per_step(cfg),
        "bytes_per_step": mod.bytes_per_step(cfg),
        "params": mod.n_params(cfg),
        "threads": settings.threads,
        "threads_used": (workers or {}).get(st.impl.framework, {}).get("threads_used", math.nan),
        "status": st.status,
        "error": st.error,
        "noisy": bool(noisy),
        "noisy_reason": noisy,
        **s,
        **u,
        "rounds": len(st.round_medians),
        "steps_per_call": st.steps_per_call,
        "median_call_s": u["median_s"] * st.steps_per_call,
        "ops_per_step": mod.ops_per_step(cfg),
        "framework_ops_per_step": st.framework_ops_per_step,
        "framework_op": st.info.get("op_unit", ""),
        "graphs": st.info.get("graphs", math.nan),
        "graph_breaks": st.info.get("graph_breaks", math.nan),
        "gflops": gflops,
        "pct_peak": 100 * gflops / peak if peak else math.nan,
        "pct_machine_peak": 100 * gflops / machine if machine else math.nan,
        "first_call_s": st.first_call_s,
        "first_call_later_s": float(np.median(later)) if later else math.nan,
        "loss_rel_err": st.loss_rel_err,
        "update_rel_err": st.update_rel_err,
        "peak_rss_mb": st.peak_rss_mb,
    }


class RowCache:
    """The results rows of a run's cases, each computed again only when its case changed: one round
    changes one case, and computing every row took 0.1 s or more late in a sweep, after each round."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], dict] = {}
        self.seen = ""  # the workers' report the rows used (threads_used)

    def rows(
        self,
        states: list[CaseState],
        settings: Settings,
        meta: dict,
        changed: CaseState | None = None,
    ) -> list[dict]:
        """Every case's row; with `changed`, only its row computed again, unless the workers' report changed."""
        seen = repr(meta["workers"])
        todo = states if changed is None or seen != self.seen else [changed]
        for st in todo:
            self.by_key[st.key] = case_row(
                st, settings, meta["run_id"], meta["peaks"], meta["workers"]
            )
        self.seen = seen
        return [self.by_key[st.key] for st in states]


def restore(
    states: list[CaseState],
    results: pd.DataFrame,
    samples: pd.DataFrame,
    rounds: pd.DataFrame,
    case_info: dict,
) -> None:
    """Case states from the files of an interrupted run (case_info: run.json's)."""
    rows = {(r["impl"], r["size"]): r for r in results.to_dict("records")}
    first = {
        (r["impl"], r["size"], r["round"]): r["first_call_s"] for r in rounds.to_dict("records")
    }
    for (impl, size, rnd), g in sorted(samples.groupby(["impl", "size", "round"]).groups.items()):
        st = next((s for s in states if s.key == (impl, size)), None)
        if st is not None and (impl, size) in rows:
            part = samples.loc[g]
            f = first.get((impl, size, rnd), math.nan)
            st.add_round(int(rnd), part["call_ns"].tolist(), int(part["steps_per_call"].iloc[0]), f)
    for st in states:
        r = rows.get(st.key)
        if r is None:
            continue
        st.status = "pending" if r["status"] == "interrupted" else r["status"]
        st.error = (
            "" if st.status == "pending" else (r["error"] if isinstance(r["error"], str) else "")
        )
        for name in RESTORED:
            setattr(st, name, float(r[name]))
        st.info = case_info.get(st.impl.name, {}).get(st.size.label, {})
        st.steps_per_call = int(r["steps_per_call"])
