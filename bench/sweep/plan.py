"""Which (round, case) pairs a run measures, in which order, how many rounds each case gets, and
which cases cannot run here.

A run measures its base rounds (`rounds`) for every case; then each case whose CI is still wider
than the target gets the extra rounds bench/stats.rounds_for asks for, decided once from its base
rounds, up to `max_rounds`, as many cases as the run's time budget pays for (two-stage: never
"stop when narrow")."""

from __future__ import annotations

import math
import statistics

from bench import frameworks, stats
from bench.sweep.cases import CaseState

# The extra rounds aim at the noisy threshold itself: the interval a row reports after them is
# Stein's (its base rounds' sd and t over the square root of its rounds in all: bench/stats.spread),
# fixed when they are planned, so a row planned to reach CI_NOISY reports it exactly (a margin
# below it bought nothing: 0.8 x the threshold cost a row (1/0.8)^2 = 1.56 times the rounds).
TARGET_CI = stats.CI_NOISY
# the extra rounds are planned to end by this share of --budget-min: their cost is an estimate
BUDGET_SHARE = 0.95


def rotate(items: list, rnd: int) -> list:
    r = rnd % len(items) if items else 0
    return items[r:] + items[:r]


def order(states: list[CaseState], rnd: int, by_framework: bool = False) -> list[CaseState]:
    """Size by size, the implementation order rotating each round so none always goes first; or
    (by_framework: one live worker at a time) framework by framework, the framework order and each
    framework's implementation order rotating each round."""
    key = (lambda st: st.impl.framework) if by_framework else (lambda st: st.size.label)
    groups: dict[str, list[CaseState]] = {}
    for st in states:
        groups.setdefault(key(st), []).append(st)
    if not by_framework:
        return [st for group in groups.values() for st in rotate(group, rnd)]
    out: list[CaseState] = []
    for fw in rotate(list(groups), rnd):
        names = rotate(list(dict.fromkeys(st.impl.name for st in groups[fw])), rnd)
        # stable: sizes in order
        out += sorted(groups[fw], key=lambda st: names.index(st.impl.name))
    return out


def plan(
    states: list[CaseState], rounds: int | dict, by_framework: bool = False, start: int = 0
) -> list[tuple[int, CaseState]]:
    """Every (round, case) not yet on disk, round by round: rounds start..rounds-1, or up to each
    case's own total (a dict keyed by CaseState.key)."""
    total = rounds if isinstance(rounds, dict) else {st.key: rounds for st in states}
    last = max(total.values(), default=0)
    return [
        (rnd, st)
        for rnd in range(start, last)
        for st in order(states, rnd, by_framework)
        if rnd < total.get(st.key, 0) and rnd not in st.rounds.done
    ]


def chunked(
    todo: list[tuple[int, CaseState]], chunks: int, by_framework: bool = False
) -> list[tuple[int, CaseState, int]]:
    """Each (round, case) of `plan` as `chunks` requests (round, case, chunk): a round's cases (with
    by_framework, each framework's run of them, one live worker at a time) take turns, chunk after
    chunk, so that a case's samples in a process are spread over the process's life, not bunched in
    one stretch of the host's drift (random interleaving in Google Benchmark; asv interleaves too)."""
    out: list[tuple[int, CaseState, int]] = []
    i = 0
    while i < len(todo):
        rnd, fw = todo[i][0], todo[i][1].impl.framework
        j = i + 1
        while (
            j < len(todo)
            and todo[j][0] == rnd
            and (not by_framework or todo[j][1].impl.framework == fw)
        ):
            j += 1
        out += [(r, st, c) for c in range(chunks) for r, st in todo[i:j]]
        i = j
    return out


def extension(
    states: list[CaseState],
    base: int,
    max_rounds: int,
    cost_s: dict,
    budget_s: float,
    start_s: dict | None = None,
    target: float = TARGET_CI,
) -> dict:
    """{case key: total rounds} for the ok cases whose CI after `base` rounds is wider than `target`.
    Each gets the rounds stats.rounds_for asks for, whole or not at all, within budget_s: first the
    cases that reach the target within max_rounds, cheapest first, then those that cannot (at
    max_rounds), cheapest first; so the budget makes as many rows precise as it can. The cost of a
    choice: cost_s (seconds of one round of a case) per extra case-round, plus start_s (seconds to
    start a framework's worker) for each framework in each extra round, since every round starts
    fresh workers. A function of the base rounds only, decided once (Stein's two-stage rule holds).
    {} when nothing needs more or fits."""
    start_s = start_s or {}
    need = {}  # key -> (rounds in all, framework, reaches the target)
    for st in states:
        if (
            st.status == "ok" and st.impl.role != "control" and len(st.rounds.medians) >= 2
        ):  # not null.noop
            n = stats.rounds_for(st.rounds.medians, target, max_rounds + 1)
            if n > base:
                need[st.key] = (min(n, max_rounds), st.impl.framework, n <= max_rounds)

    framework = {k: fw for k, (_, fw, _) in need.items()}
    chosen: dict = {}
    for k in sorted(
        need, key=lambda k: (not need[k][2], (need[k][0] - base) * cost_s.get(k, math.inf), k)
    ):
        if plan_cost({**chosen, k: need[k][0]}, base, cost_s, start_s, framework) <= budget_s:
            chosen[k] = need[k][0]
    return chosen


def plan_cost(chosen: dict, base: int, cost_s: dict, start_s: dict, framework: dict) -> float:
    """Estimated seconds of extra rounds ({case key: rounds in all}): cost_s per extra case-round,
    plus start_s of each framework (framework: key -> its name) in each extra round it has a case in."""
    cases = sum((n - base) * cost_s.get(k, math.inf) for k, n in chosen.items())
    return cases + sum(
        start_s.get(fw, 0.0)
        for rnd in range(base, max(chosen.values(), default=base))
        for fw in {framework[k] for k, n in chosen.items() if n > rnd}
    )


def mark_unavailable(states: list[CaseState], device: str) -> None:
    """Pending cases whose framework is missing, or that cannot run on the run's device."""
    for st in states:
        if st.status != "pending":
            continue
        why = frameworks.impl_unavailable(st.impl, device)
        if why:
            st.status, st.error = "unavailable", why


def extension_within(
    states: list[CaseState],
    settings,
    cost_s: dict,
    elapsed_s: float,
    start_s: dict | None = None,
    base_wall_s: float | None = None,
) -> dict:
    """`extension` for a run: its base and most rounds, what remains of BUDGET_SHARE of its
    --budget-min after elapsed_s, each case's cost from its rounds' wall times here (cost_s: key ->
    seconds; their median, since round 0 also builds and gates), or for a resumed run that has none, from its sampling budget and first call; each
    framework's worker start (start_s) from this part of the run, plus what each framework's round
    cost in the base rounds beyond its cases' own times (base_wall_s, the base rounds' wall time:
    stopping workers, writing the tables), so the estimate of an extra round is the base rounds' own."""
    s = settings
    budget_s = (
        s.budget_min * 60 * BUDGET_SHARE - elapsed_s if s.budget_min is not None else math.inf
    )
    # not the mean: round 0 also gates
    cost = {k: statistics.median(v) for k, v in cost_s.items() if v}
    for st in states:
        first = st.first_call_s if math.isfinite(st.first_call_s) else 0.0
        cost.setdefault(st.key, 2 * (s.budget.seconds + s.budget.warmup_s) + first)
    start = dict(start_s or {})
    fws = {st.impl.framework for st in states}
    if base_wall_s is not None and fws:
        rest = max(0.0, base_wall_s - sum(sum(v) for v in cost_s.values())) / (s.rounds * len(fws))
        start = {fw: start.get(fw, 0.0) + rest for fw in fws}
    return extension(states, s.rounds, s.most_rounds, cost, budget_s, start)
