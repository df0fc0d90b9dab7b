"""The noise study's table (studies/noise_study.sh): for each variation's run directory under DIR,
the median round_sd (sd of the log process medians) overall and per size, the median
within-process IQR, the share of noisy rows, the share of slow processes (1.3x or more their
case's fastest: bench/results.slow_process_share), the run's minutes, and its median step time against
the first variation's (what a setting costs in throughput). Writes DIR/summary.csv and summary.md.

    python studies/noise_summary.py studies/records/noise_study       # or studies/records/noise_study_gpt, _budget, _chunks
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import read_run, slow_process_share
from bench.schema import SchemaError

ORDER = [
    "old-default",
    "t2-passive",
    "t2-bound",
    "t2-thp-off",
    "t2-haswell",
    "t2-one-worker",
    "t1-shared",
    "t1-harness-core",
    "new-default",
    "old-default-b",
    "t2-thp-off-b",
    "old-default-c",
    "t2-thp-off-c",
    "gpt-t1-default",
    "gpt-t1-hugetlb",
    "gpt-t2-old-default",
    "gpt-t1-default-b",
    "gpt-t1-hugetlb-b",
]


def short_names(sizes: list[str]) -> dict[str, str]:
    """A column name per size: its first field (B32) where that tells the sizes apart, else the label."""
    first = [z.split("-")[0] for z in sizes]
    return {
        z: (f if len(set(first)) == len(first) else z) for z, f in zip(sizes, first, strict=True)
    }


def minutes(meta: dict) -> float:
    """The run's minutes; NaN for one not finished (a study still running, or stopped)."""
    if not (meta.created_utc and meta.finished_utc):
        return float("nan")
    t = [
        datetime.fromisoformat(getattr(meta, k).replace("Z", "+00:00"))
        for k in ("created_utc", "finished_utc")
    ]
    return (t[1] - t[0]).total_seconds() / 60


def markdown(table: pd.DataFrame) -> list[str]:
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)] + [
        "| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False)
    ]


def main(root: Path) -> int:
    runs = {}
    for d in sorted(p for p in root.iterdir() if (p / "results.csv").is_file()):
        try:
            results, rounds, _, meta = read_run(d, samples=False)
        except SchemaError as e:
            print(f"noise_summary: skipping {d}: {e}", file=sys.stderr)
            continue
        runs[d.name] = (
            results[results["status"] == "ok"],
            meta,
            slow_process_share(results, rounds),
        )
    if not runs:
        print(f"noise_summary: no run directories under {root}", file=sys.stderr)
        return 2
    names = [n for n in ORDER if n in runs] + sorted(n for n in runs if n not in ORDER)
    # a run of other cases (a check kept beside the study) is not a variation
    same = set(runs[names[0]][0]["size"])
    for n in [n for n in names if set(runs[n][0]["size"]) != same]:
        print(f"noise_summary: leaving out {n}: other cases than {names[0]}", file=sys.stderr)
        names.remove(n)
    base = runs[names[0]][0].set_index(["impl", "size"])["median_s"]
    sizes = list(dict.fromkeys(runs[names[0]][0]["size"]))
    short = short_names(sizes)
    rows = []
    for n in names:
        df, meta, slow = runs[n]
        s = meta.settings
        ratio = (df.set_index(["impl", "size"])["median_s"] / base).dropna()
        rows.append(
            {
                "variation": n,
                "threads": s["threads"],
                "harness_cpu": s.get("harness_cpu", False),
                "live_workers": s.get("live_workers", "all"),
                "chunks": s.get("chunks", 1),
                "rows": len(df),
                "median_round_sd": float(df["round_sd"].median()),
                **{
                    f"round_sd_{short[z]}": float(df.loc[df["size"] == z, "round_sd"].median())
                    for z in sizes
                },
                "median_within_iqr": float(df["round_iqr_rel"].median()),
                "noisy_pct": float(100 * df["noisy"].astype(bool).mean()),
                "slow_pct": 100 * slow,
                "step_vs_first": float(np.exp(np.log(ratio).median()))
                if len(ratio)
                else float("nan"),
                "minutes": round(minutes(meta), 1),
            }
        )
    table = pd.DataFrame(rows)
    (root / "summary.csv").write_text(table.to_csv(index=False, float_format="%.4g"))
    md = [
        "# Noise study",
        "",
        "`bash studies/noise_study.sh`, `bash studies/noise_study_gpt.sh` or `bash studies/noise_study_budget.sh` or `bash studies/noise_study_chunks.sh` "
        f"(then `python studies/noise_summary.py {root}`). "
        "round_sd: sd of the log per-process medians of a case (median over its cases); within IQR: the "
        "median within-process IQR / median; slow: processes 1.3x or more their case's fastest; step vs first: geometric median of each case's median step "
        f"over the same case in `{names[0]}` (above 1: slower).",
        "",
        *markdown(table),
        "",
    ]
    (root / "summary.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("studies/records/noise_study")))
