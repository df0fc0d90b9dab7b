"""One round of one case: one worker process, the unit of replication. The sweep makes a Round
from a process's samples, writes it to rounds.csv, and restores it from there; the importer makes
its one Round per case by the same code (bench/sweep/importer.py)."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np

from bench import stats
from bench.schema import SCHEMA_VERSION
from bench.timing import per_step_s


@dataclass(frozen=True)
class Round:
    impl: str
    size: str  # the size's label
    round: int  # from 0
    pid: int  # the worker process that ran it
    first_call_s: float  # the first call of the step built in this process
    n_samples: int  # timed calls
    median_s: float  # median seconds per training step in this process
    iqr_rel: float  # IQR / median of this process's samples
    steps_per_call: int

    @classmethod
    def of_calls(
        cls,
        key: tuple[str, str],
        rnd: int,
        call_ns,
        steps_per_call: int,
        first_call_s: float = math.nan,
        pid: int = 0,
    ) -> tuple[Round, np.ndarray]:
        """(the round, its per-step seconds) from the raw ns of each timed call (K steps each)."""
        # pragma: no mutate (equivalent: dtype)
        per_step = per_step_s(np.asarray(call_ns, float), steps_per_call)
        made = cls(
            key[0],
            key[1],
            rnd,
            pid,
            first_call_s,
            per_step.size,
            float(np.median(per_step)),
            stats.iqr_rel(per_step),
            steps_per_call,
        )
        return made, per_step

    @classmethod
    def from_row(cls, r: dict) -> Round:
        """A rounds.csv row (bench/results.read_rounds) as a Round."""
        return cls(
            str(r["impl"]),
            str(r["size"]),
            int(r["round"]),
            int(r["pid"]),
            float(r["first_call_s"]),
            int(r["n_samples"]),
            float(r["median_s"]),
            float(r["iqr_rel"]),
            int(r["steps_per_call"]),
        )

    def row(self) -> tuple:
        """Its rounds.csv row (bench/schema.ROUND_COLUMNS)."""
        return (SCHEMA_VERSION, *astuple(self))

    def sample_rows(self, call_ns) -> list[tuple]:
        """Its samples.csv rows (bench/schema.SAMPLE_COLUMNS), one per timed call."""
        return [
            (SCHEMA_VERSION, self.impl, self.size, self.round, i, v, self.steps_per_call)
            for i, v in enumerate(call_ns)
        ]
