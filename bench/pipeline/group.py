"""The P rank processes of one round (bench/pipeline/rank.py), started and killed through
bench/supervisor.py: a crash or a hang of any rank fails the case it was running."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import asdict, replace
from pathlib import Path

from bench import frameworks, protocol
from bench.supervisor import Child, ChildFailure, Launch, how_it_ended, wait_line


class Group:
    """One process per spec (its program by spec.form); rank r's lines arrive tagged r in one queue.
    Each rank puts its sockets on the interface of its spec's address (loopback on one node)."""

    ENV = {"OMP_NUM_THREADS": "1"}

    def __init__(
        self, specs: list[protocol.RankSpec], logs: Path, env: dict[str, str] | None = None
    ) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.ranks = [
            Child(
                Launch(
                    frameworks.rank_modules()[s.form],
                    [json.dumps(asdict(s))],
                    {**self.ENV, **(env or {})},
                ),
                logs / f"{s.form}-rank{s.rank}.log",
                f"{s.form} rank {s.rank}",
                sink=self.lines,
                tag=i,
            )
            for i, s in enumerate(specs)
        ]

    def next_result(
        self, timeout_s: float, stop: threading.Event | None = None
    ) -> protocol.PipeResult:
        """The next case result (rank 0's, or a failing rank's); a crash, a hang or a stop request
        -> a result with that status and no case fields filled (the caller adds them)."""
        blank = protocol.PipeResult("", 0, 0, "ok")
        while True:
            try:
                r, line = wait_line(self.lines, timeout_s, stop, "group")
            except ChildFailure as f:
                why = (
                    f"no rank answered within {timeout_s:g} s; group killed"
                    if f.status == "timeout"
                    else f.reason
                )
                return replace(blank, status=f.status, error=why)
            if r == "node":  # bench/pipeline/nodes.py: a node of the group is gone
                return replace(blank, status="crashed", error=f"{line}; group killed")
            if line is None:
                code = self.ranks[r].proc.wait()
                if code != 0:
                    return replace(
                        blank,
                        status="crashed",
                        error=f"{self.ranks[r].who} {how_it_ended(code)}; group killed",
                    )
                continue
            msg = protocol.decode_rank_line(line)
            if isinstance(msg, protocol.PipeResult):
                return msg

    def kill(self) -> None:
        for c in self.ranks:
            c.close()
