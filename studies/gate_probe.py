"""Would a host-quiet gate make processes agree? (issue "precise numbers")

A gate would time a fixed canary (host_canary's ~0.5 ms of work) just before and just after each
measurement and keep the measurement only when both ran near the host's fast level, so that a
process measured while a neighbour slows the host is measured again. This probe asks whether the
canary sees what slows a case: one process on one CPU (the last one, where workers run beside the
harness core), in turn: canary x5, case x15, canary x5, a 0.2 s pause; for SECONDS, with two
cases: `small` (12 tanh(h @ W), h 256x128, W 128x128: L2-sized) and `large` (h 64x512 through
eight 512x512 W, 8 MB: L3-sized, as a GPT's weights and AdamW state are). Nothing else of this
project runs meanwhile. Writes OUT/blocks.csv and OUT/summary.md: the correlation of the canary
bracket with the case, and the case's sd (log) with and without the gate at 1.1, 1.2, 1.3 x the
canary's 10th percentile.

    python studies/gate_probe.py [SECONDS] [OUT]      (default 180 s, studies/records/noise_study/gate_probe)
    python studies/gate_probe.py --summary OUT       (summary.md again from OUT/blocks.csv)
From a clean tree, on an otherwise idle machine.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_canary import canary_work, median_ns  # noqa: E402

GATES = (1.1, 1.2, 1.3)


def cases() -> dict:
    rng = np.random.default_rng(1)
    h_s, w_s = rng.random((256, 128), dtype=np.float32), rng.random((128, 128), dtype=np.float32)
    h_l = rng.random((64, 512), dtype=np.float32)
    ws_l = [rng.random((512, 512), dtype=np.float32) for _ in range(8)]

    def small() -> None:
        h = h_s
        for _ in range(12):
            h = np.tanh(h @ w_s) * 0.1

    def large() -> None:
        h = h_l
        for w in ws_l:
            h = np.tanh(h @ w) * 0.1

    return {"small": small, "large": large}


def probe(seconds: float) -> pd.DataFrame:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    canary, work = canary_work(cpu), cases()
    rows, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        for name, f in work.items():
            t = round(time.monotonic() - t0, 3)
            before, case, after = median_ns(canary, 5), median_ns(f, 15), median_ns(canary, 5)
            rows.append((cpu, t, name, before, case, after))
            time.sleep(0.2)
    return pd.DataFrame(
        rows, columns=["cpu", "t_s", "case", "canary_before_ns", "case_ns", "canary_after_ns"]
    )


def summarize(df: pd.DataFrame, seconds: float, out: Path) -> int:
    lines = [
        f"# Gate probe: {seconds:.0f} s on CPU {int(df.cpu.iloc[0])}, nothing else running",
        "",
        f"`python studies/gate_probe.py {seconds:.0f} {out}`. canary: the slower of the two "
        "canary medians around a case measurement (the median of 15 calls), over the canary's "
        "10th percentile. Gate g keeps a measurement when its canary is under g. sd: of the "
        "log case medians; a gate helps where the kept sd falls well below the sd of all.",
        "",
        "| case | measurements | median µs | corr(log canary, log case) | sd all | "
        + " | ".join(f"gate {g}: kept, sd" for g in GATES)
        + " |",
        "|---" * (5 + len(GATES)) + "|",
    ]
    for name, d in df.groupby("case", sort=False):
        canary = np.maximum(d.canary_before_ns, d.canary_after_ns).to_numpy(float)
        canary /= np.percentile(canary, 10)
        lc = np.log(d.case_ns.to_numpy(float))
        gated = []
        for g in GATES:
            keep = canary < g
            gated.append(
                f"{keep.mean():.0%}, {np.std(lc[keep], ddof=1):.3f}" if keep.sum() > 2 else "-"
            )
        lines.append(
            f"| {name} | {len(d)} | {np.exp(np.median(lc)) / 1e3:,.0f} | "
            f"{np.corrcoef(np.log(canary), lc)[0, 1]:.2f} | {np.std(lc, ddof=1):.3f} | "
            + " | ".join(gated)
            + " |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--summary"]:
        out = Path(argv[1])
        df = pd.read_csv(out / "blocks.csv")
        first = df[df.case == df.case.iloc[0]]  # its last turn starts just before the end
        return summarize(df, float(np.ceil(first.t_s.max())), out)
    seconds = float(argv[0]) if argv else 180.0
    out = Path(argv[1] if len(argv) > 1 else "studies/records/noise_study/gate_probe")
    out.mkdir(parents=True, exist_ok=True)
    df = probe(seconds)
    df.to_csv(out / "blocks.csv", index=False)
    return summarize(df, seconds, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
