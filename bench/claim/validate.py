"""`bench claim --validate`: the model against measured steps, tuning nothing per run.

1. Both published tables (bench/claim/presets.py): each run predicted as it was run, its error;
   the mean absolute and largest error per table and per GPU kind. `--refit` fits the named
   parameters (formulas.FITTED) to both tables again by least squares on the relative errors.
2. Leave one model out: the parameters fitted without every run of one model, that model's runs
   predicted; its errors show how far the fit generalises.
3. This project's own P = 2 CPU pipeline probe: its measured stage times and send, simulated with
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
from bench.claim.memory import memory
from bench.claim.presets import Run, published
from bench.results import read_pipeline
from bench.schedules import hand_order, interleaved_order, simulate

GOALS = {"table5": (0.035, 0.085), "modern": (0.05, 0.12)}  # mean and largest |error|
LOMO_GOAL = 0.07
BOUNDS = (0.05, 1.0)


def predict(host: HostCost, pr: Params = PARAMS, runs: list[Run] | None = None) -> pd.DataFrame:
    rows = []
    for r in published() if runs is None else runs:
        s = model.step(r.config, host, pr)
        mem = memory(r.config)
        rows.append(
            {
                "run": r.config.name,
                "table": r.table,
                "gpu": r.config.hardware.gpu,
                "dtype": r.config.hardware.dtype,
                "model": r.model_name,
                "measured_s": r.measured_s,
                "predicted_s": s.seconds,
                "error": s.seconds / r.measured_s - 1,
                "mfu": s.mfu,
                "memory_gib": mem.total_gib,
                "hbm_gib": mem.capacity_gib,
                "source": r.source,
            }
        )
    return pd.DataFrame(rows)


def _with(values) -> Params:
    return dataclasses.replace(PARAMS, **dict(zip(FITTED, (float(v) for v in values), strict=True)))


def refit(host: HostCost, runs: list[Run] | None = None) -> Params:
    """The FITTED parameters by least squares on the relative errors; the others as stated."""
    from scipy import optimize

    runs = published() if runs is None else runs

    def errors(x):
        return predict(host, _with(x), runs)["error"].to_numpy()

    x0 = [getattr(PARAMS, n) for n in FITTED]
    lo, hi = BOUNDS
    sol = optimize.least_squares(errors, x0, bounds=([lo] * len(x0), [hi] * len(x0)))
    return _with(np.round(sol.x, 3))


def leave_one_model_out(host: HostCost) -> pd.DataFrame:
    """Each model's runs predicted by parameters fitted on every other model's runs."""
    runs = published()
    frames = []
    for name in sorted({r.model_name for r in runs}):
        held = [r for r in runs if r.model_name == name]
        pr = refit(host, [r for r in runs if r.model_name != name])
        frames.append(
            predict(host, pr, held).assign(**{f"fit_{k}": getattr(pr, k) for k in FITTED})
        )
    return pd.concat(frames, ignore_index=True)


def summary(df: pd.DataFrame) -> tuple[float, float]:
    e = np.abs(df["error"].to_numpy())
    return float(e.mean()), float(e.max())


def by(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and largest |error| and the run count per value of a column (table, gpu, model)."""
    g = df.assign(abs_error=df["error"].abs()).groupby(column, sort=False)["abs_error"]
    return pd.DataFrame({"runs": g.size(), "mean_abs_error": g.mean(), "max_abs_error": g.max()})


def probe(run: str = PIPELINE_RUN) -> pd.DataFrame:
    """The committed pipeline probe's GPipe, 1F1B and interleaved rows: measured step [CI] against
    the simulation of their order with the measured (slowest) stage times and send."""
    df = read_pipeline(Path(ROOT) / run)
    rows = []
    kinds = ["gpipe", "1f1b", "interleaved-1f1b", "hand-gpipe", "hand-1f1b"]
    for r in df[(df["status"] == "ok") & df["schedule"].isin(kinds)].itertuples():
        P, M, v = int(r.stages), int(r.microbatches), int(r.virtual_stages)
        if v > 1:
            orders = {k: interleaved_order(k, P, M, v) for k in range(P)}
        else:
            orders = {k: [(k, a, m) for a, m in hand_order(r.schedule, k, P, M)] for k in range(P)}
        S = P * v
        f = dict.fromkeys(range(S), r.stage_f_s)  # every stage at the slowest one's measured time
        b = dict.fromkeys(range(S), r.stage_b_s)
        predicted = simulate(orders, S, f, b, r.comm_s, {s: s % P for s in range(S)})
        rows.append(
            {
                "schedule": r.schedule,
                "M": M,
                "measured_s": r.step_s,
                "ci_low_s": r.ci_low_s,
                "ci_high_s": r.ci_high_s,
                "predicted_s": predicted,
                "within_ci": bool(r.ci_low_s <= predicted <= r.ci_high_s),
                "schedule_cost_s": r.step_s - predicted,
            }
        )
    return pd.DataFrame(rows)
