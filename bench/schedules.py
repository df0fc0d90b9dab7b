"""The pipeline schedules, described once: which stages each rank holds, how the schedule is
built, what theory says its bubble is, and the action order an ideal simulation follows.

No torch import at module level: the supervisor reads the names and formulas, the rank
processes build the schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

TORCH_CLASSES = {  # schedule name -> torch.distributed.pipelining class
    "gpipe": "ScheduleGPipe",
    "1f1b": "Schedule1F1B",
    "interleaved-1f1b": "ScheduleInterleaved1F1B",
    "zb": "ScheduleInterleavedZeroBubble",
    "zbv": "ScheduleZBVZeroBubble",
    "dualpipev": "ScheduleDualPipeV",
}


@dataclass(frozen=True)
class Schedule:
    name: str
    # "torch" (torch.distributed.pipelining), "hand" (ours over send/recv), "single" (one process)
    kind: str
    layout: str  # "one" (stage r on rank r), "interleaved" (r, r + P), "v" (r, 2P - 1 - r), "whole"
    min_microbatches: str = ""  # "P" or "2P": the fewest microbatches the schedule accepts

    def stages(self, rank: int, P: int) -> list[int]:
        """Stage indices on a rank."""
        if self.layout == "one":
            return [rank]
        if self.layout == "interleaved":
            return [rank, rank + P]
        if self.layout == "v":
            return [rank, 2 * P - 1 - rank]
        return [0] if rank == 0 else []

    def fewest_microbatches(self, P: int) -> int:
        return {"": 1, "P": P, "2P": 2 * P}[self.min_microbatches]

    def n_stages(self, P: int) -> int:
        return {"one": P, "interleaved": 2 * P, "v": 2 * P, "whole": 1}[self.layout]

    def theory_bubble(self, P: int, M: int) -> float:
        """Idle share of the step when every stage takes the same time and communication is free:
        (P-1)/(M+P-1) for GPipe and 1F1B; (P-1)/(vM+P-1) with v = 2 virtual stages per rank when
        interleaved; 0 for the zero-bubble schedules once M >= 2P (ZB-V, DualPipe-V: their papers'
        claim under equal F, B and W times; before that, the 1F1B value); 0 for one process."""
        if self.kind == "single":
            return 0.0
        if self.name in ("zb", "zbv", "dualpipev"):
            return 0.0 if M >= 2 * P else (P - 1) / (M + P - 1)
        v = 2 if self.layout == "interleaved" else 1
        return (P - 1) / (v * M + P - 1)


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule("gpipe", "torch", "one"),
        Schedule("1f1b", "torch", "one", "P"),
        Schedule("interleaved-1f1b", "torch", "interleaved", "P"),
        Schedule("zb", "torch", "interleaved", "P"),
        Schedule("zbv", "torch", "v", "P"),
        Schedule("dualpipev", "torch", "v", "2P"),
        Schedule("hand-gpipe", "hand", "one"),
        Schedule("hand-1f1b", "hand", "one"),
        Schedule("one-process", "single", "whole"),
        Schedule("one-process-accum", "single", "whole"),
    )
}


def hand_order(name: str, rank: int, P: int, M: int) -> list[tuple[str, int]]:
    """The (F|B, microbatch) sequence of a one-stage-per-rank schedule on a rank: GPipe runs every
    forward, then every backward; 1F1B warms up with P - 1 - rank forwards, then alternates."""
    if name.endswith("gpipe"):
        return [("F", m) for m in range(M)] + [("B", m) for m in range(M)]
    warm = min(P - 1 - rank, M)
    order = [("F", m) for m in range(warm)]
    f, b = warm, 0
    while b < M:
        if f < M:
            order.append(("F", f))
            f += 1
        order.append(("B", b))
        b += 1
    return order


def simulate(
    orders: dict[int, list[tuple[int, str, int]]],
    n_stages: int,
    f: dict[int, float],
    b: dict[int, float],
    comm: float,
    rank_of: dict[int, int],
) -> float:
    """Makespan of a schedule run with the measured stage times and no other cost: each rank runs
    its (stage, F|B|I|W, microbatch) actions in order, an action starting once its rank is free and
    its inputs exist (a forward needs the previous stage's forward, a backward the next stage's
    backward, plus `comm` when that stage is on another rank; W follows its I). I and W each take
    half the stage's backward."""
    return Plan.of(orders, n_stages, rank_of).makespan(f, b, comm)


@dataclass(frozen=True)
class Plan:
    """A schedule's actions in an order where each comes after its inputs, with what it waits for:
    built once per (orders, stages), then timed for any stage times by one pass (max-plus), so a
    model can simulate thousands of layouts. The order of building does not depend on the times."""

    # rank, stage, kind, deps
    actions: tuple[tuple[int, int, str, tuple[tuple[int, bool], ...]], ...]
    ranks: tuple[int, ...]

    @classmethod
    def of(
        cls, orders: dict[int, list[tuple[int, str, int]]], n_stages: int, rank_of: dict[int, int]
    ) -> Plan:
        index: dict[tuple[int, str, int], int] = {}
        actions = []
        pos = dict.fromkeys(orders, 0)
        while any(pos[r] < len(orders[r]) for r in orders):
            progressed = False  # pragma: no mutate (None is as false)
            for r in orders:
                while pos[r] < len(orders[r]):  # each rank as far as its inputs allow
                    s, kind, m = orders[r][pos[r]]
                    deps = _inputs(s, kind, m, n_stages)
                    if any(d not in index for d in deps):
                        break
                    index[(s, kind, m)] = len(actions)
                    if kind == "B":
                        index[(s, "I", m)] = len(actions)  # a whole backward is its own input half
                    actions.append(
                        (r, s, kind, tuple((index[d], rank_of[d[0]] != r) for d in deps))
                    )
                    pos[r] += 1
                    progressed = True
            if not progressed:
                raise ValueError("the action orders deadlock")
        return cls(tuple(actions), tuple(orders))

    def makespan(self, f: dict[int, float], b: dict[int, float], comm: float) -> float:
        free = dict.fromkeys(self.ranks, 0.0)
        done = []
        for r, s, kind, deps in self.actions:
            start = free[r]
            for i, cross in deps:
                start = max(start, done[i] + (comm if cross else 0.0))
            end = start + (f[s] if kind == "F" else b[s] if kind == "B" else b[s] / 2)
            free[r] = end
            done.append(end)
        return max(free.values())


def _inputs(s: int, kind: str, m: int, n_stages: int) -> list[tuple[int, str, int]]:
    """The actions whose results an action needs: a forward the previous stage's forward, a
    backward (or its input half I) its own forward and the next stage's input gradient, W its I."""
    if kind == "F":
        return [(s - 1, "F", m)] if s > 0 else []
    if kind in ("B", "I"):
        return [(s, "F", m)] + ([(s + 1, "I", m)] if s < n_stages - 1 else [])
    return [(s, "I", m)]


def interleaved_order(rank: int, P: int, M: int, v: int) -> list[tuple[int, str, int]]:
    """Megatron-LM's interleaved 1F1B on one rank (v model chunks: stages rank, rank + P, ...;
    M a multiple of P): (stage, F|B, microbatch) actions. Warm-up (P - rank - 1) 2 + (v - 1) P
    forwards, then one forward and one backward in turn, then the remaining backwards; the k-th
    forward runs chunk (k mod P v) // P on microbatch (k // P v) P + k mod P, the backwards visit
    the chunks in reverse."""
    total = M * v
    warm = min((P - rank - 1) * 2 + (v - 1) * P, total)

    def action(k: int, kind: str) -> tuple[int, str, int]:
        chunk = (k % (P * v)) // P
        if kind == "B":
            chunk = v - 1 - chunk
        return chunk * P + rank, kind, (k // (P * v)) * P + k % P

    order = [action(k, "F") for k in range(warm)]
    for k in range(total - warm):
        order += [action(k + warm, "F"), action(k, "B")]
    return order + [action(k, "B") for k in range(total - warm, total)]
