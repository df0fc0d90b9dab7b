"""What the extra rounds' planner would make of a finished run's base rounds, under its own settings
and under others (issue "precise numbers"): same base rounds, same budget, only the planner differs.

A row's reported CI after extra rounds is Stein's: its base rounds' sd over the square root of its
processes in all (bench/stats.spread), so which rows end noisy follows from the base rounds and the
counts the planner gives, with no new measurement. What the planner may spend is the run's own:
the estimated cost of the extra rounds it got (run.json `extra_rounds`), each case-round estimated
from rounds.csv as its first call plus max(sampling budget, 5 calls) plus its warm-up (0.05 s, at
least 2 calls) plus one step after timing, and each framework's worker start per extra round
(START_S: torch 1.8 s, jax 0.9 s, measured on the 2-core VM, bench/sweep/pool start_s). The first
line replays the run's own settings: its `noisy` must equal the run's results.csv.

    python studies/replan.py RUN_DIR [TARGET,MAX_ROUNDS[,MORE_S] ...]     e.g. 0.05,32 0.05,32,60
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from bench import stats
from bench.sweep.plan import extension, plan_cost

START_S = {"torch": 1.8, "jax": 0.9}  # other frameworks' workers start in under 0.1 s


def case_round_s(r: pd.DataFrame, budget: dict) -> float:
    """Estimated seconds of one round of a case, from its base rounds in rounds.csv (median)."""
    call = r["median_s"] * r["steps_per_call"]
    est = (
        r["first_call_s"].fillna(0)
        + np.maximum(budget["seconds"], budget["min_samples"] * call)
        + np.maximum(budget["warmup_s"], 2 * call)
        + r["median_s"]
    )
    return float(est.median())


def noisy_after(logs: np.ndarray, n: int, base: int, iqr: float) -> bool:
    """bench/stats's noisy rule on the row's interval at n processes in all, from its base rounds'
    logs: Stein's, so the extra processes' values do not change its width (they stand in at the
    base rounds' mean here)."""
    m = np.concatenate([np.exp(logs), np.full(max(0, n - base), np.exp(logs.mean()))])
    center, lo, hi = stats.log_t_interval(m, first=base)
    return (
        stats.noisy_reason(
            {"median_s": center, "ci_low_s": lo, "ci_high_s": hi, "round_iqr_rel": iqr}
        )
        != ""
    )


def parse(text: str) -> tuple[float, int, float]:
    """'TARGET,MAX_ROUNDS[,MORE_S]' -> (target, max rounds, seconds added to the budget)."""
    parts = text.split(",")
    return float(parts[0]), int(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    run = Path(argv[0])
    if not all((run / f).is_file() for f in ("run.json", "rounds.csv", "results.csv")):
        print(
            f"replan: {run} is not a finished run directory (run.json, rounds.csv, results.csv)",
            file=sys.stderr,
        )
        return 2
    meta = json.loads((run / "run.json").read_text())
    s = meta["settings"]
    base, rounds = s["rounds"], pd.read_csv(run / "rounds.csv")
    results = pd.read_csv(run / "results.csv").set_index(["impl", "size"])
    ok = results[(results["status"] == "ok") & (results["role"] != "control")]
    cases, cost, logs, iqr = [], {}, {}, {}
    for (impl, size), r in rounds.groupby(["impl", "size"]):
        if (impl, size) not in ok.index:
            continue
        r = r.sort_values("round")
        b = r[r["round"] < base]
        key = (impl, size)
        logs[key], iqr[key] = np.log(b["median_s"].to_numpy()), float(ok.loc[key, "round_iqr_rel"])
        cost[key] = case_round_s(b, s["budget"])
        cases.append(
            SimpleNamespace(
                key=key,
                status="ok",
                rounds=SimpleNamespace(medians=list(b["median_s"])),
                impl=SimpleNamespace(framework=impl.split(".")[0], role=""),
            )
        )
    got = {tuple(k.split("|", 1)): n for k, n in meta.get("extra_rounds", {}).items()}
    got = {k: n for k, n in got.items() if k in cost}

    framework = {c.key: c.impl.framework for c in cases}

    def spend(plan: dict) -> float:
        return plan_cost(plan, base, cost, START_S, framework)

    budget = spend(got)
    actual = int(ok["noisy"].astype(str).eq("True").sum())
    print(
        f"{run}: {len(cases)} rows, {base} base rounds; its extra rounds: {len(got)} rows, "
        f"{sum(n - base for n in got.values())} case-rounds, estimated {budget:.0f} s; noisy in results.csv: {actual}"
    )
    settings = [(None, s["max_rounds"], 0.0)] + [parse(a) for a in argv[1:]]
    for target, most, more_s in settings:
        plan = (
            got
            if target is None
            else extension(cases, base, most, cost, budget + more_s, START_S, target)
        )
        n_of = {c.key: plan.get(c.key, base) for c in cases}
        noisy = sum(noisy_after(logs[k], n, base, iqr[k]) for k, n in n_of.items())
        label = (
            f"the run's own ({s['max_rounds']} at most)"
            if target is None
            else f"target ±{target:.0%}, {most} at most"
            + (f", budget + {more_s:.0f} s" if more_s else "")
        )
        print(
            f"  {label}: {len(plan)} rows extended, {sum(n - base for n in plan.values())} case-rounds, "
            f"{spend(plan):.0f} s; noisy rows {noisy} of {len(cases)} ({100 * noisy / max(1, len(cases)):.0f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
