"""Terminal output of a run: a progress bar (case, round, ETA) and the summary table."""

from __future__ import annotations

import math
import time

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True)
if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
    console = Console(stderr=True, width=200)


class Bar:
    """A rich progress bar on a terminal; elsewhere (logs, CI) one plain line per case with ETA."""

    def __enter__(self) -> Bar:
        self.live = console.is_terminal
        self.start = time.monotonic()
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("starting", total=None)
        return self

    def update(self, desc: str, rnd: int, done: int, total: int) -> None:
        if self.live:
            self.progress.update(self.task, description=f"round {rnd + 1}: {desc:<32}", completed=done, total=total)
            return
        elapsed = time.monotonic() - self.start
        eta = f"{elapsed / done * (total - done):.0f} s" if done else "?"
        console.print(f"[{done}/{total}] round {rnd + 1}: {desc}  (elapsed {elapsed:.0f} s, ETA {eta})", highlight=False)

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)


def fmt_us(seconds: float) -> str:
    """Microseconds with sensible digits; '-' for a missing value."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f}"
    return f"{us:.1f}" if us < 1000 else f"{us:,.0f}"


def median_grid(df: pd.DataFrame, not_ok: str = "{status}") -> tuple[list[str], list[tuple[str, pd.DataFrame, list[str]]]]:
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
                cells.append(fmt_us(r.iloc[0]["median_s"]) + ("*" if str(r.iloc[0]["noisy"]) == "True" else ""))
        out.append((size, g, cells))
    return impls, out


def summary(rows: list[dict]) -> None:
    """Median µs per training step, one row per size, one column per implementation."""
    df = pd.DataFrame(rows)
    impls, grid = median_grid(df, not_ok="! {status}")
    t = Table(title="median µs per training step (* noisy, ! not ok)")
    t.add_column("size")
    for name in impls:
        t.add_column(name, justify="right")
    for size, _, cells in grid:
        t.add_row(size, *cells)
    console.print(t)
    bad = df[df["status"] != "ok"]
    for _, r in bad.iterrows():
        console.print(f"  {r['impl']} {r['size']}: {r['status']}: {r['error']}")
