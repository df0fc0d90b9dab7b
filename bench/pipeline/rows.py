"""From the rounds' raw results to pipeline.csv: step time with a CI over rounds, the measured
stage and send times, the simulated ideal, theory's bubble, and what remains (the schedule's cost)."""

from __future__ import annotations

import math
import re

import numpy as np

from bench.schedules import SCHEDULES, hand_order, simulate
from bench.stats import log_t_interval

STOPPED = "the probe was stopped before this case was measured"
ACTION = re.compile(r"^(\d+)(F|B|I|W)(\d+)$")
OVERLAP = re.compile(r"^\((\w+);(\w+)\)OVERLAP_F_B$")
NOT_COMPUTE = re.compile(r"^\d+(REDUCE_GRAD|SEND_F|SEND_B|RECV_F|RECV_B|UNSHARD|RESHARD)\d*$")


def orders_of(res: dict, P: int, M: int) -> tuple[dict, dict] | None:
    """({rank: [(stage, kind, microbatch)]}, {stage: rank}) of a case, or None when its order has
    actions the simulation does not model."""
    sched = SCHEDULES[res["schedule"]]
    if (
        res.get("order") and sched.layout != "one"
    ):  # one stage per rank: the textbook order (hand_order)
        orders = {}
        for r, acts in res["order"].items():
            # an overlapped F;B: one after the other
            flat = [a for act in acts for a in OVERLAP.sub(r"\1 \2", act).split()]
            parsed = [ACTION.match(a) for a in flat if not NOT_COMPUTE.match(a)]
            if not all(parsed):
                return None
            orders[int(r)] = [(int(m.group(1)), m.group(2), int(m.group(3))) for m in parsed]
    else:
        orders = {r: [(r, k, m) for k, m in hand_order(sched.name, r, P, M)] for r in range(P)}
    rank_of = {s: r for r in range(P) for s in sched.stages(r, P)}
    return orders, rank_of


def ideal(res: dict, P: int, M: int, f: dict, b: dict, comm: float) -> float:
    sched = SCHEDULES[res["schedule"]]
    if sched.kind == "single":
        chunks = 1 if sched.name == "one-process" else M
        return chunks * (f[0] + b[0])
    found = orders_of(res, P, M)
    if found is None:
        return math.nan
    try:
        return simulate(found[0], sched.n_stages(P), f, b, comm, found[1])
    except (ValueError, KeyError):
        return math.nan


def cross_node_sends(name: str, P: int, M: int, nnodes: int) -> int:
    """Sends per step between stages on different machines: node k holds ranks k x P / nnodes
    onwards, and each stage boundary that crosses two carries M activations forward and M
    gradients back."""
    sched = SCHEDULES[name]
    if sched.kind == "single" or nnodes == 1:
        return 0
    node = {s: r // (P // nnodes) for r in range(P) for s in sched.stages(r, P)}
    return 2 * M * sum(node[s] != node[s + 1] for s in range(sched.n_stages(P) - 1))


def row(
    settings,
    framework: str,
    name: str,
    M: int,
    results: list[dict],
    unmeasured: str = "pending",
) -> dict:
    """One pipeline.csv row (but its run_id, the directory's) from the case's results of every
    round so far (protocol.PipeResult as dicts); a case with none yet has the status `unmeasured`
    (pending, or interrupted)."""
    sched, P, cfg = SCHEDULES[name], settings.stages, settings.config
    ok = sorted((r for r in results if r["status"] == "ok"), key=lambda r: r["round"])
    bad = [r for r in results if r["status"] != "ok"]
    out = {
        "model": settings.model,
        "framework": framework,
        "schedule": name,
        "stages": P,
        "virtual_stages": sched.n_stages(P) // P if sched.kind != "single" else 1,
        "nodes": settings.nnodes,
        "ranks_per_node": P // settings.nnodes,
        "cross_node_sends": cross_node_sends(name, P, M, settings.nnodes),
        "microbatches": M,
        "batch": cfg["batch"],
        "status": bad[0]["status"] if bad else ("ok" if ok else unmeasured),
        "error": bad[0]["error"] if bad else ("" if ok or unmeasured == "pending" else STOPPED),
        "rounds": len(ok),
        "theory_bubble": sched.theory_bubble(P, M),
    }
    empty = dict.fromkeys(
        (
            "step_s",
            "ci_low_s",
            "ci_high_s",
            "stage_f_s",
            "stage_b_s",
            "compute_s",
            "comm_s",
            "ideal_s",
            "measured_bubble",
            "residual_s",
            "grad_rel_err",
        ),
        math.nan,
    )
    if not ok:
        return {**out, **empty}
    step, lo, hi = log_t_interval(
        [float(np.median(r["step_ns"])) / 1e9 for r in ok],
        first=settings.rounds,
        # Stein's: extra rounds were chosen from the first ones  # pragma: no mutate (1e9 + 1: one part
        # per billion)
    )
    f = {int(k): float(np.median([r["stage_f_s"][k] for r in ok])) for k in ok[0]["stage_f_s"]}
    b = {int(k): float(np.median([r["stage_b_s"][k] for r in ok])) for k in ok[0]["stage_b_s"]}
    comm = float(np.median([r["comm_s"] for r in ok]))
    chunks = 1 if name == "one-process" else M
    per_rank = {}
    for s in f:
        r = next(r for r in range(P) if s in sched.stages(r, P))
        per_rank[r] = per_rank.get(r, 0.0) + chunks * (f[s] + b[s])
    compute = max(per_rank.values())
    best = ideal(ok[0], P, M, f, b, comm)
    grad = next((r["grad_rel_err"] for r in results if r.get("grad_rel_err") is not None), math.nan)
    status = out["status"]
    if status == "ok" and not grad <= settings.grad_rtol:
        status, out["error"] = (
            "mismatch",
            f"gradient rel. error {grad:.2e} > {settings.grad_rtol:.0e}",
        )
    return {
        **out,
        "status": status,
        "step_s": step,
        "ci_low_s": lo,
        "ci_high_s": hi,
        "stage_f_s": max(f.values()),
        "stage_b_s": max(b.values()),
        "compute_s": compute,
        "comm_s": comm,
        "ideal_s": best,
        "measured_bubble": 1 - compute / step,
        "residual_s": step - best,
        "grad_rel_err": grad,
    }
