"""Terminal output of a run: a progress bar (case, round, ETA) and the summary table."""

from __future__ import annotations

import time

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bench.tables import median_grid

console = Console(stderr=True)
if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
    console = Console(stderr=True, width=200)


class Bar:
    """A rich progress bar on a terminal; elsewhere (logs, CI) one plain line per case with ETA."""

    def __enter__(self) -> Bar:
        self.live = console.is_terminal
        self.start = self.stage_start = time.monotonic()
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("starting", total=None)
        return self

    def update(self, desc: str, rnd: int, done: int, total: int) -> None:
        """done of total cases measured in this stage (the base rounds, then the extra rounds): the
        ETA is this stage's pace, not the run's (the base rounds' pace overstated the extra rounds')."""
        if done == 0:
            self.stage_start = time.monotonic()
        if self.live:
            if done == 0:
                self.progress.reset(self.task)
            self.progress.update(
                self.task, description=f"round {rnd + 1}: {desc:<32}", completed=done, total=total
            )
            return
        now = time.monotonic()
        elapsed, stage = now - self.start, now - self.stage_start
        eta = f"{stage / done * (total - done):.0f} s" if done else "?"
        console.print(
            f"[{done}/{total}] round {rnd + 1}: {desc}  (elapsed {elapsed:.0f} s, ETA {eta})",
            highlight=False,
        )

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)


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
