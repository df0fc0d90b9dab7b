"""`bench claim --validate`: the model against measured steps it was not tuned on per run.

1. The published A100 runs (Korthikanti et al. 2022, Table 5): predicted against measured, the
   error of each, their mean absolute and largest. `--refit` fits the named parameters
   (formulas.FITTED) to this table again by least squares and prints them.
2. This project's own P = 2 CPU pipeline probe: its measured stage times and send, simulated with
   each schedule's order (the model's pipeline term), against the measured step and its CI; what
   the measured step exceeds that by is the schedule's cost.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bench.claim import model
from bench.claim.formulas import FITTED, PARAMS, Params
from bench.claim.host import PIPELINE_RUN, ROOT, HostCost
from bench.claim.presets import published
from bench.schedules import hand_order, interleaved_order, simulate


def predict(host: HostCost, pr: Params = PARAMS) -> pd.DataFrame:
    rows = []
    for c, measured, source in published():
        s = model.step(c, host, pr)
        rows.append({"run": c.name, "source": source, "measured_s": measured, "predicted_s": s.seconds,
                     "error": s.seconds / measured - 1, "mfu": s.mfu})
    return pd.DataFrame(rows)


def refit(host: HostCost) -> tuple[Params, pd.DataFrame]:
    """The FITTED parameters by least squares on the relative errors; the others as stated."""
    from scipy import optimize

    def errors(x):
        return predict(host, dataclasses.replace(PARAMS, **dict(zip(FITTED, x, strict=True))))["error"].to_numpy()

    x0 = [getattr(PARAMS, n) for n in FITTED]
    sol = optimize.least_squares(errors, x0, bounds=([0.05] * len(x0), [1.0] * len(x0)))
    pr = dataclasses.replace(PARAMS, **{n: round(float(v), 3) for n, v in zip(FITTED, sol.x, strict=True)})
    return pr, predict(host, pr)


def probe(run: str = PIPELINE_RUN) -> pd.DataFrame:
    """The committed pipeline probe's GPipe, 1F1B and interleaved rows: measured step [CI] against
    the simulation of their order with the measured (slowest) stage times and send."""
    df = pd.read_csv(Path(ROOT) / run / "pipeline.csv")
    rows = []
    for r in df[(df["status"] == "ok") & df["schedule"].isin(["gpipe", "1f1b", "interleaved-1f1b", "hand-gpipe",
                                                              "hand-1f1b"])].itertuples():
        P, M, v = int(r.stages), int(r.microbatches), int(r.virtual_stages)
        if v > 1:
            orders = {k: interleaved_order(k, P, M, v) for k in range(P)}
        else:
            orders = {k: [(k, a, m) for a, m in hand_order(r.schedule, k, P, M)] for k in range(P)}
        S = P * v
        f = dict.fromkeys(range(S), r.stage_f_s)  # every stage (chunk) at the slowest one's measured time
        b = dict.fromkeys(range(S), r.stage_b_s)
        predicted = simulate(orders, S, f, b, r.comm_s, {s: s % P for s in range(S)})
        rows.append({"schedule": r.schedule, "M": M, "measured_s": r.step_s, "ci_low_s": r.ci_low_s,
                     "ci_high_s": r.ci_high_s, "predicted_s": predicted,
                     "within_ci": bool(r.ci_low_s <= predicted <= r.ci_high_s),
                     "schedule_cost_s": r.step_s - predicted})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> tuple[float, float]:
    e = np.abs(df["error"].to_numpy())
    return float(e.mean()), float(e.max())
