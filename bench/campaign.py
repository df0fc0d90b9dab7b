"""One lifecycle for every measuring run (the sweep's and the pipeline probe's): the run starts,
its base rounds run in fresh processes, the cases whose interval is still wide get extra rounds
decided once from the base rounds by the run's planner (two-stage: never "stop when narrow"; a
resumed run keeps the decision it made), and the run ends complete or interrupted, with its final
files and the host's noise. Ctrl-C (`stop`) ends it cleanly at any point."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from bench import envinfo
from bench.results import RunDir
from bench.runmeta import RunMeta


@dataclass
class Stages:
    """What a kind of run does at each stage of the campaign."""

    base: Callable[[], None]  # measure the base rounds not on disk yet
    plan: Callable[[], dict[str, int]]  # "case key" -> rounds in all, from the base rounds
    extra: Callable[[dict[str, int]], None]  # measure the extra rounds not on disk yet
    finish: Callable[[bool], object]  # the final files (stopped or not); what run() returns


def run(run_dir: RunDir, meta: RunMeta, stop: threading.Event, stages: Stages):
    """Base rounds, the extra rounds decided once, the end. Returns stages.finish's value."""
    noise = envinfo.noise_start()
    run_dir.start(meta)
    try:
        stages.base()
        if not stop.is_set() and meta.extra_rounds is None:
            meta.extra_rounds = stages.plan()
            run_dir.write_meta(meta)
        if not stop.is_set() and meta.extra_rounds:
            stages.extra(meta.extra_rounds)
    finally:
        out = stages.finish(stop.is_set())
        meta.finish(stop.is_set(), noise)
        run_dir.write_meta(meta)
    return out
