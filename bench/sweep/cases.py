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
from bench.rounds import Round
from bench.runmeta import RunMeta
from bench.sizes import Size
from bench.sweep.settings import Settings
from models.registry import Impl, model_module

RESTORED = (
    "first_call_s",
    "loss_rel_err",
    "update_rel_err",
    "peak_rss_mb",
    "framework_ops_per_step",
)


@dataclass
class CaseRounds:
    """A case's rounds (one per worker process: the unit of replication) and every per-step
    sample of them, pooled."""

    rounds: list[Round] = field(default_factory=list)
    samples_s: list[float] = field(default_factory=list)

    def add(self, made: Round, per_step) -> None:
        self.rounds.append(made)
        self.samples_s += list(per_step)

    @property
    def medians(self) -> list[float]:
        return [r.median_s for r in self.rounds]

    @property
    def iqr_rel(self) -> list[float]:
        return [r.iqr_rel for r in self.rounds]

    @property
    def first_calls(self) -> list[float]:
        return [r.first_call_s for r in self.rounds]

    @property
    def done(self) -> set[int]:
        """The rounds whose samples are on disk."""
        return {r.round for r in self.rounds}


@dataclass
class ChunkAssembler:
    """A round's samples chunk by chunk (each case samples in turns within its process), until
    its last chunk; a chunk from another process than the earlier ones starts the round again
    from it (the framework's worker died in another case's turn, and a new one built this case
    afresh): a round is one process."""

    ns: list[int] = field(default_factory=list)
    first_s: float = math.nan  # the round's process's first call, from its fresh build's chunk
    pid: int = 0

    def add(self, reply, chunk: int, last: bool) -> tuple[list[int], float] | None:
        """(the round's samples in ns, its first call) after its last chunk brought samples; None
        before it, or when the last chunk failed (its round is left unwritten, as a failed one)."""
        if chunk == 0 or reply.pid != self.pid:
            self.ns, self.first_s, self.pid = [], math.nan, reply.pid
        if reply.first_call_s is not None:
            self.first_s = reply.first_call_s
        self.ns += reply.samples_ns or []
        if not last or not reply.samples_ns:
            return None
        done = self.ns, self.first_s
        self.ns, self.first_s = [], math.nan
        return done


@dataclass
class CaseState:
    """One case during a run: its result (status, gate, first call, description), its rounds and
    the chunks of the round in progress."""

    impl: Impl
    size: Size
    status: str = "pending"  # pending until its first round finishes
    error: str = ""
    steps_per_call: int = 1
    first_call_s: float = math.nan
    loss_rel_err: float = math.nan
    update_rel_err: float = math.nan
    peak_rss_mb: float = math.nan
    framework_ops_per_step: float = math.nan  # counted by the implementation (info["op_unit"])
    info: dict = field(default_factory=dict)  # the step's describe(), after a round's timing
    rounds: CaseRounds = field(default_factory=CaseRounds)
    chunks: ChunkAssembler = field(default_factory=ChunkAssembler)

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
    ) -> Round:
        """One round (one worker process) from its raw samples (ns per call)."""
        made, per_step = Round.of_calls(self.key, rnd, call_ns, steps_per_call, first_call_s, pid)
        self.steps_per_call = steps_per_call
        self.rounds.add(made, per_step)
        return made

    def fold(self, reply, rnd: int, chunk: int = 0, last: bool = True) -> tuple[Round, list] | None:
        """A worker's CaseReply to one of a round's sampling chunks into this case. After the
        round's last chunk (`last`: the worker's reply.last): (the Round, its samples in ns, every
        chunk's) when that chunk brought samples; a round whose last chunk never came (a crash, a
        stop) or failed leaves nothing."""
        self.peak_rss_mb = reply.peak_rss_mb
        if reply.first_call_s is not None and math.isnan(self.first_call_s):
            self.first_call_s = reply.first_call_s  # the first process's build
        if reply.loss_rel_err is not None:
            self.loss_rel_err, self.update_rel_err = reply.loss_rel_err, reply.update_rel_err
        self.status, self.error = reply.status, reply.error
        done = self.chunks.add(reply, chunk, last)
        if done is None:
            return None
        ns, first = done
        return self.add_round(rnd, ns, reply.steps_per_call, first, reply.pid), ns


def case_row(st: CaseState, settings: Settings, peaks: dict, workers: dict | None = None) -> dict:
    """The results.csv row of a case, every column of bench/schema.py but run_id (the run
    directory's, RunDir.write_results)."""
    cfg = st.size.config()
    mod = model_module(st.size.model)
    flops = mod.flops_per_step(cfg)
    s = stats.pooled(np.asarray(st.rounds.samples_s))
    # base rounds first (restore sorts by round); a row without extra rounds has no more than these
    u = stats.across_units(st.rounds.medians, st.rounds.iqr_rel, first=settings.rounds)
    noisy = stats.noisy_reason(u)  # '' without samples: a NaN median is not judged
    # NaN without samples
    gflops = flops / u["median_s"] / 1e9 if st.impl.role != "control" else math.nan
    later = [f for f in st.rounds.first_calls[1:] if math.isfinite(f)]
    peak = peaks.get(st.impl.framework, {}).get("gflops")
    device = frameworks.run_device(st.impl, settings.device)
    machine = max(
        (p["gflops"] for p in peaks.values() if "gflops" in p and p.get("device", "cpu") == device),
        default=None,
    )
    return {
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
        "rounds": len(st.rounds.rounds),
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
        self.stale = True  # every row is computed again (a worker's report came: threads_used)

    def invalidate(self) -> None:
        self.stale = True

    def rows(
        self,
        states: list[CaseState],
        settings: Settings,
        meta: RunMeta,
        changed: CaseState | None = None,
    ) -> list[dict]:
        """Every case's row; with `changed`, only its row computed again, unless a worker's
        report came since (invalidate)."""
        todo = states if changed is None or self.stale else [changed]
        for st in todo:
            self.by_key[st.key] = case_row(st, settings, meta.peaks, meta.workers)
        self.stale = False
        return [self.by_key[st.key] for st in states]


def restore(
    states: list[CaseState],
    results: pd.DataFrame,
    samples: pd.DataFrame,
    rounds: pd.DataFrame,
    case_info: dict,
) -> None:
    """Case states from the files of an interrupted run (case_info: run.json's): each round
    made again from its samples (the samples are on disk before its rounds.csv row), with the
    first call and process rounds.csv has for it."""
    rows = {(r["impl"], r["size"]): r for r in results.to_dict("records")}
    written = {(r["impl"], r["size"], r["round"]): r for r in rounds.to_dict("records")}
    for (impl, size, rnd), g in sorted(samples.groupby(["impl", "size", "round"]).groups.items()):
        st = next((s for s in states if s.key == (impl, size)), None)
        if st is not None and (impl, size) in rows:
            part, r = samples.loc[g], written.get((impl, size, rnd))
            first, pid = (r["first_call_s"], int(r.get("pid", 0))) if r else (math.nan, 0)
            k = int(part["steps_per_call"].iloc[0])
            st.add_round(int(rnd), part["call_ns"].tolist(), k, first, pid)
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
