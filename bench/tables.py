"""Plain-text tables shared by the terminal summary and the report (no terminal code here)."""

from __future__ import annotations

import math

import pandas as pd


def fmt_us(seconds: float) -> str:
    """Microseconds with sensible digits; '-' for a missing value."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    us = seconds * 1e6
    if abs(us) < 10:
        return f"{us:.2f}"
    return f"{us:.1f}" if abs(us) < 1000 else f"{us:,.0f}"


def median_grid(
    df: pd.DataFrame, not_ok: str = "{status}"
) -> tuple[list[str], list[tuple[str, pd.DataFrame, list[str]]]]:
    """The size x implementation table of median µs per step: (impls, [(size, rows, cells)]).
    A cell is the median with * when noisy, or the status (formatted by not_ok) when not ok."""
    impls = list(dict.fromkeys(df["impl"]))
    out = []
    for size, g in df.groupby("size", sort=False):
        cells = []
        for name in impls:
            r = g[g["impl"] == name]
            if r.empty:
                cells.append("")
            elif r.iloc[0]["status"] != "ok":
                cells.append(not_ok.format(status=r.iloc[0]["status"]))
            else:
                cells.append(
                    fmt_us(r.iloc[0]["median_s"])
                    + ("*" if str(r.iloc[0]["noisy"]) == "True" else "")
                )
        out.append((size, g, cells))
    return impls, out
