"""How much pairing by round narrows the overhead CIs of committed runs: per run, the median ratio of
the paired to the unpaired 95% CI width of every row's overhead against the floor, over all rows and
over the rows whose overhead is under a quarter of their step time (where a CI decides the
crossover). Each run is read as `bench report` reads it.

    python studies/paired_ci_effect.py RUN [RUN ...]
"""

from __future__ import annotations

import sys

from bench.report import analysis
from bench.results import base_rounds, read_run


def main(runs: list[str]) -> int:
    for run in runs:
        res, rounds, _, meta = read_run(run)
        first = base_rounds(meta)
        paired = analysis.shares(res, rounds, first=first)
        unpaired = analysis.shares(res, rounds, first=first, paired=False)
        paired = paired[paired["impl"] != paired["floor_impl"]]
        unpaired = unpaired.loc[paired.index]
        ratio = (paired["overhead_hi_s"] - paired["overhead_lo_s"]) / (
            unpaired["overhead_hi_s"] - unpaired["overhead_lo_s"]
        )
        small = paired["share"].abs() < 0.25
        print(
            f"{run}: chunks {meta.settings.get('chunks', 1)}; paired/unpaired CI width, median "
            f"{ratio.median():.2f} ({int((ratio < 1).sum())} of {len(ratio)} rows narrower); overhead under 25% "
            f"of the step: {ratio[small].median():.2f} ({int((ratio[small] < 1).sum())} of {int(small.sum())})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
