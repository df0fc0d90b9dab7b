"""How much of a run's spread between processes is the whole machine changing speed from one round
to the next: for each run, the log per-process medians of its ok rows (controls left out, base
rounds only) less each row's mean; the shared shift of a round is the mean of those residuals over
every row of that round. Prints, per run, the within-row sd (the rows' variances pooled: round_sd's
scale), the sd of the round shifts, the share of that variance they hold, and the sd left once
they are removed. A share near 0 is spread of the processes themselves (or of each case's
moment); near 1, a host whose speed moves between rounds, which more processes average only as
fast as rounds accrue.

    python studies/round_shift.py RUN [RUN ...]
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from bench.results import base_rounds, read_run
from bench.schema import SchemaError


def shift_table(results: pd.DataFrame, rounds: pd.DataFrame, meta: dict) -> dict[str, float]:
    """residual_sd (pooled within rows), shift_sd, shift_share, within_sd (after the shifts) and the
    rows and rounds counted (NaNs when no row has two base rounds)."""
    ok = results[(results["status"] == "ok") & (results["role"] != "control")]
    r = rounds.merge(ok[["impl", "size"]], on=["impl", "size"])
    base = base_rounds(meta)
    if base is not None:
        r = r[r["round"] < base]
    r = r[r["median_s"] > 0]
    # rows with two processes or more
    r = r[r.groupby(["impl", "size"])["round"].transform("size") > 1]
    if len(r) < 2:
        return {
            "rows": 0,
            "rounds": 0,
            "residual_sd": np.nan,
            "shift_sd": np.nan,
            "shift_share": np.nan,
            "within_sd": np.nan,
        }
    logm = np.log(r["median_s"])
    res, rnd = logm - logm.groupby([r["impl"], r["size"]]).transform("mean"), r["round"]
    rows, k = r.groupby(["impl", "size"]).ngroups, int(rnd.nunique())
    shifts = res.groupby(rnd).mean()  # each round's shift, shared by its rows
    shift = rnd.map(shifts)
    # each row's variance about its mean, pooled: round_sd's
    pooled = float((res**2).sum()) / (len(res) - rows)
    # after the rounds' shifts too
    within = float(((res - shift) ** 2).sum()) / max(len(res) - rows - k + 1, 1)
    return {
        "rows": rows,
        "rounds": k,
        "residual_sd": pooled**0.5,
        "shift_sd": float(shifts.std(ddof=1)),
        "shift_share": max(0.0, 1 - within / pooled) if pooled > 0 else np.nan,
        "within_sd": within**0.5,
    }


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python studies/round_shift.py RUN [RUN ...]", file=sys.stderr)
        return 2
    tables = {}
    for path in argv:
        try:
            results, rounds, _, meta = read_run(path, samples=False)
        except (OSError, SchemaError, ValueError) as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            return 2
        tables[path] = shift_table(results, rounds, meta)
    print(
        "| run | rows | rounds | within-row sd | round shift sd | share | sd left within rounds |\n|---|---|---|---|---|---|---|"
    )
    for path, t in tables.items():
        print(
            f"| {path} | {t['rows']} | {t['rounds']} | {t['residual_sd']:.3f} | {t['shift_sd']:.3f} | "
            f"{t['shift_share']:.0%} | {t['within_sd']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
