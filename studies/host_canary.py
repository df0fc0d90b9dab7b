"""How steady the machine itself is, with no harness in the way (issue "precise numbers").

One process per CPU, each pinned to it, times the same fixed work (20 float32 96x96 matmuls on one
BLAS thread, then a 3,000-step Python loop: about 0.9 ms) ten times in a block, then sleeps 50 ms;
for SECONDS. Nothing else of this project runs meanwhile. Writes OUT/blocks.csv (cpu, t_s, the
block's median ns) and OUT/summary.md: how much a window of W seconds of that fixed work varies
(sd of the log window medians, as round_sd is the sd of the log process medians), and how much the
two CPUs move together. A harness cannot remove this part of the spread between processes.

    python studies/host_canary.py [SECONDS] [OUT]     (default 300 s, studies/records/noise_study/host_canary)
    python studies/host_canary.py --summary OUT      (summary.md again from OUT/blocks.csv)
From a clean tree, on an otherwise idle machine.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

WINDOWS_S = (0.06, 0.25, 0.5, 1.0, 2.0, 4.0)


def canary_work(seed: int):
    """The fixed work, on one BLAS thread: 20 float32 96x96 matmuls, then a 3,000-step Python loop."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    a = np.random.default_rng(seed).random((96, 96), dtype=np.float32)
    c = np.empty_like(a)

    def work() -> None:
        for _ in range(20):
            np.matmul(a, a, out=c)
        s = 0
        for i in range(3000):
            s += i * i

    return work


def median_ns(f, n: int) -> int:
    """The median of n timings of f(), in ns."""
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        f()
        ts.append(time.perf_counter_ns() - t)
    return int(np.median(ts))


def blocks(cpu: int, seconds: float, q) -> None:
    os.sched_setaffinity(0, {cpu})
    work = canary_work(cpu)
    out, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        t = time.monotonic() - t0
        out.append((cpu, round(t, 3), median_ns(work, 10)))
        time.sleep(0.05)
    q.put(out)


def window_sd(t: np.ndarray, ns: np.ndarray, w: float) -> float:
    """sd of the log median of each w-second window, windows at least 5 s apart (as processes are)."""
    logs = np.log(ns)
    wins = [logs[(t >= s) & (t < s + w)] for s in np.arange(0, t.max() - w, max(5.0, w))]
    return float(np.std([np.median(x) for x in wins if x.size], ddof=1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--summary"]:  # summary.md again from a committed blocks.csv
        out = Path(argv[1])
        df = np.loadtxt(out / "blocks.csv", delimiter=",", skiprows=1)
        rows = [(int(c), float(t), float(n)) for c, t, n in df]
        cpus = sorted({r[0] for r in rows})
        # the last block starts just before the end
        seconds = float(math.ceil(max(r[1] for r in rows)))
        return summarize(rows, cpus, seconds, out)
    seconds = float(argv[0]) if argv else 300.0
    out = Path(argv[1] if len(argv) > 1 else "studies/records/noise_study/host_canary")
    out.mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    q = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=blocks, args=(c, seconds, q)) for c in cpus]
    for p in procs:
        p.start()
    rows = [r for _ in procs for r in q.get()]
    for p in procs:
        p.join()
    rows.sort(key=lambda r: (r[0], r[1]))
    (out / "blocks.csv").write_text(
        "cpu,t_s,block_ns\n" + "".join(f"{c},{t},{n}\n" for c, t, n in rows)
    )
    return summarize(rows, cpus, seconds, out)


def summarize(rows: list, cpus: list[int], seconds: float, out: Path) -> int:
    lines = [
        f"# Host canary: {seconds:.0f} s of fixed work on CPUs {cpus}, nothing else running",
        "",
        f"`python studies/host_canary.py {seconds:.0f} {out}`. A block: the median of 10 timings of the "
        "same ~0.9 ms of work. sd over W s: sd of the log median of W-second windows 5 s apart "
        "(what a process timing W s of a steady case would see, if only the host moved).",
        "",
        "| cpu | blocks | median block µs | p5/median | p95/median | p99/median | "
        + " | ".join(f"sd over {w:g} s" for w in WINDOWS_S)
        + " |",
        "|---" * (5 + len(WINDOWS_S)) + "|---|",
    ]
    series = {}
    for c in cpus:
        t = np.array([r[1] for r in rows if r[0] == c])
        ns = np.array([r[2] for r in rows if r[0] == c], float)
        series[c] = (t, ns)
        med = np.median(ns)
        p = np.percentile(ns, [5, 95, 99]) / med
        lines.append(
            f"| {c} | {ns.size} | {med / 1e3:.0f} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} | "
            + " | ".join(f"{window_sd(t, ns, w):.3f}" for w in WINDOWS_S)
            + " |"
        )
    if len(cpus) == 2:
        (ta, a), (tb, b) = series[cpus[0]], series[cpus[1]]
        edges = np.arange(0, min(ta.max(), tb.max()), 1.0)
        ma = [np.median(np.log(a[(ta >= e) & (ta < e + 1)])) for e in edges]
        mb = [np.median(np.log(b[(tb >= e) & (tb < e + 1)])) for e in edges]
        lines += [
            "",
            f"Correlation of the two CPUs' 1-s window medians (log): {np.corrcoef(ma, mb)[0, 1]:.2f}",
        ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
