"""Which (round, case) pairs a run measures, in which order, and which cases cannot run here."""

from __future__ import annotations

from bench.sweep.cases import CaseState


def order(states: list[CaseState], rnd: int) -> list[CaseState]:
    """Size by size; the implementation order rotates each round so none always goes first."""
    by_size: dict[str, list[CaseState]] = {}
    for st in states:
        by_size.setdefault(st.size.label, []).append(st)
    out: list[CaseState] = []
    for group in by_size.values():
        r = rnd % len(group)
        out += group[r:] + group[:r]
    return out


def plan(states: list[CaseState], rounds: int) -> list[tuple[int, CaseState]]:
    """Every (round, case) not yet on disk, round by round."""
    return [(rnd, st) for rnd in range(rounds) for st in order(states, rnd) if rnd not in st.done_rounds]


def mark_unavailable(states: list[CaseState], device: str) -> None:
    """Pending cases whose framework is missing, or that cannot run on the run's device."""
    for st in states:
        if st.status != "pending":
            continue
        why = st.impl.unavailable_reason(device)
        if why:
            st.status, st.error = "unavailable", why
